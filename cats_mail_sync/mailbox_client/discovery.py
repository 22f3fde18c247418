"""Find the IMAP and SMTP settings of a mailbox from its e-mail address.

Sources are asked in order of trust: the preset of the provider the user chose,
the domain's own autoconfig file (Mozilla format, over HTTPS), its SRV records
(RFC 6186 / RFC 8314), Thunderbird's provider database (ISPDB), and finally the
domain's MX host when it belongs to Google or Microsoft. The first source that
gives IMAP and SMTP ends the search. Only encrypted offers count.

Every source tried leaves a :class:`Step` (what was asked, what came of it) for
the user to read. A failing source (DNS error, timeout, refused or untrusted
connection, HTTP error, bad XML) is a step, never an exception.

DNS answers are not signed: a result pointing outside the user's domain, to a
host that is not a known provider, sets ``needs_confirmation``.

Every HTTPS fetch goes only to public addresses (the guard of
:mod:`.connection`), unless ``allow_private``: the domain in an e-mail address
must not make the Odoo server fetch pages on its own network. Servers found in
SRV or MX records are only returned as settings; the guard checks them when a
connection is made.
"""

import http.client
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import dns.exception
import dns.resolver

from .connection import Server, check_addresses, tls_context
from .errors import HostNotAllowed, MailboxError, _lt

MAX_RESPONSE_BYTES = 1_000_000


@dataclass(frozen=True)
class Provider:
    label: str
    imap: Server | None = None
    smtp: Server | None = None
    note: str | None = None


MICROSOFT_NOTE = _lt(
    "Microsoft no longer accepts passwords over IMAP for Outlook.com and Microsoft 365 mailboxes: "
    "sign in with your Microsoft account."
)

PROVIDERS = {
    "gmail": Provider(
        _lt("Gmail"),
        Server("imap.gmail.com", 993, "ssl"),
        Server("smtp.gmail.com", 465, "ssl"),
        _lt(
            "Sign in with your Google account, or use an app password: create one under Google Account "
            "→ Security → 2-Step Verification → App passwords."
        ),
    ),
    "outlook": Provider(
        _lt("Outlook.com"),
        Server("outlook.office365.com", 993, "ssl"),
        Server("smtp-mail.outlook.com", 587, "starttls"),
        MICROSOFT_NOTE,
    ),
    "office365": Provider(
        _lt("Microsoft 365 / Office 365"),
        Server("outlook.office365.com", 993, "ssl"),
        Server("smtp.office365.com", 587, "starttls"),
        MICROSOFT_NOTE,
    ),
    "exchange": Provider(_lt("Exchange (on premises)")),
    "yahoo": Provider(
        _lt("Yahoo"),
        Server("imap.mail.yahoo.com", 993, "ssl"),
        Server("smtp.mail.yahoo.com", 465, "ssl"),
        _lt("Yahoo needs an app password: create one under Account Info → Account security → App passwords."),
    ),
    "icloud": Provider(
        _lt("iCloud"),
        Server("imap.mail.me.com", 993, "ssl"),
        Server("smtp.mail.me.com", 587, "starttls"),
        _lt(
            "iCloud needs an app-specific password: create one in your Apple Account under "
            "Sign-In and Security → App-Specific Passwords."
        ),
    ),
    "other": Provider(_lt("Other")),
}

KNOWN_HOSTS = {server.host for p in PROVIDERS.values() for server in (p.imap, p.smtp) if server}

# MX host suffix -> provider whose preset serves that domain.
MX_PROVIDERS = {"google.com": "gmail", "googlemail.com": "gmail", "outlook.com": "office365"}

SOURCES = {
    "address": _lt("E-mail address"),
    "preset": _lt("Provider settings"),
    "autoconfig": _lt("Your domain's autoconfig"),
    "well-known": _lt("Your domain's autoconfig (website)"),
    "srv": _lt("DNS service records (SRV)"),
    "ispdb": _lt("Thunderbird's provider database (ISPDB)"),
    "mx": _lt("Your domain's mail exchanger (MX)"),
}

# Autoconfig socketType -> Server.security, best first. "plain" is not allowed.
SOCKET_TYPES = {"SSL": "ssl", "STARTTLS": "starttls"}


class Step(NamedTuple):
    """One source tried. ``message % params`` is the outcome, in English.

    The Odoo layer shows ``env._(SOURCES[source])`` and ``env._(message, **params)``.
    """

    source: str
    message: str
    params: dict

    @property
    def outcome(self):
        return self.message % self.params


@dataclass
class Detection:
    """What was found. ``source`` is the code of the source that gave the IMAP server."""

    imap: Server | None = None
    smtp: Server | None = None
    login: str = ""
    source: str = ""
    steps: list = field(default_factory=list)
    needs_confirmation: bool = False
    note: str | None = None

    @property
    def found(self):
        return self.imap is not None


class Offer(NamedTuple):
    imap: Server | None
    smtp: Server | None
    login: str | None = None


def discover(
    email,
    provider="other",
    *,
    resolver=None,
    https_port=443,
    ca_file=None,
    ispdb_url="https://autoconfig.thunderbird.net/v1.1/",
    timeout=3.0,
    allow_private=False,
):
    """Look for the settings of ``email``; see the module docstring. Never raises.

    ``allow_private`` lets the HTTPS fetches reach loopback and private addresses.
    """
    address = email.strip()
    detection = Detection(login=address)
    domain = _domain_of(address)
    if not domain:
        detection.steps.append(Step("address", _lt("This is not a valid e-mail address."), {}))
        return detection

    chosen = PROVIDERS.get(provider, PROVIDERS["other"])
    search = _Search(
        address, domain, resolver or dns.resolver.Resolver(), https_port, ca_file, timeout, allow_private
    )
    sources = [("preset", lambda: Offer(chosen.imap, chosen.smtp))] if chosen.imap else []
    sources += [
        ("autoconfig", search.autoconfig),
        ("well-known", search.well_known),
        ("srv", search.srv),
        ("ispdb", lambda: search.config(ispdb_url + domain)),
        ("mx", search.mx),
    ]
    for source, ask in sources:
        try:
            offer = ask()
        except MailboxError as exc:
            detection.steps.append(Step(source, exc.message, exc.params))
            continue
        detection.steps.append(_found(source, offer))
        if offer.imap and not detection.imap:
            detection.imap, detection.source = offer.imap, source
            detection.login = offer.login or address
        detection.smtp = detection.smtp or offer.smtp
        if detection.imap and detection.smtp:
            break

    chosen_servers = [server for server in (detection.imap, detection.smtp) if server]
    detection.needs_confirmation = any(
        server.host not in KNOWN_HOSTS and not _inside(server.host, domain) for server in chosen_servers
    )
    detection.note = chosen.note or next(
        (p.note for p in PROVIDERS.values() if detection.imap and p.imap == detection.imap), None
    )
    return detection


class _Search:
    """The network side of :func:`discover`: each public method is one source."""

    def __init__(self, address, domain, resolver, https_port, ca_file, timeout, allow_private):
        self.address = address
        self.domain = domain
        self.resolver = resolver
        self.https_port = https_port
        self.ca_file = ca_file
        self.timeout = timeout
        self.allow_private = allow_private

    def autoconfig(self):
        query = quote(self.address, safe="@")
        return self.config(
            f"https://autoconfig.{self.domain}:{self.https_port}/mail/config-v1.1.xml?emailaddress={query}"
        )

    def well_known(self):
        return self.config(
            f"https://{self.domain}:{self.https_port}/.well-known/autoconfig/mail/config-v1.1.xml"
        )

    def srv(self):
        imap = self._service("_imaps", "ssl") or self._service("_imap", "starttls")
        smtp = self._service("_submissions", "ssl") or self._service("_submission", "starttls")
        if not imap and not smtp:
            raise MailboxError(
                _lt("No IMAP or SMTP submission service is published for %(domain)s."), domain=self.domain
            )
        return Offer(imap, smtp)

    def mx(self):
        exchangers = sorted(self._lookup(self.domain, "MX"), key=lambda record: record.preference)
        if not exchangers:
            raise MailboxError(_lt("%(domain)s has no MX record."), domain=self.domain)
        host = str(exchangers[0].exchange).rstrip(".").lower()
        for suffix, code in MX_PROVIDERS.items():
            if _inside(host, suffix):
                return Offer(PROVIDERS[code].imap, PROVIDERS[code].smtp)
        raise MailboxError(_lt("The mail exchanger %(host)s is not a known provider."), host=host)

    def config(self, url):
        """Fetch and read a Mozilla autoconfig file."""
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise MailboxError(_lt("Only HTTPS addresses are used, not %(url)s."), url=url)
        host, port = parts.hostname, parts.port or 443
        body = self._get(host, port, parts.path + (f"?{parts.query}" if parts.query else ""))
        return _read_config(body, host, self.address)

    def _service(self, service, security):
        records = sorted(
            self._lookup(f"{service}._tcp.{self.domain}", "SRV"), key=lambda r: (r.priority, -r.weight)
        )
        if not records or str(records[0].target) == ".":  # "." = the domain does not offer it
            return None
        return Server(str(records[0].target).rstrip(".").lower(), records[0].port, security)

    def _lookup(self, name, rdtype):
        try:
            return list(self.resolver.resolve(name, rdtype, lifetime=self.timeout))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise MailboxError(_lt("The DNS lookup of %(name)s timed out."), name=name) from None
        except dns.exception.DNSException as exc:
            raise MailboxError(
                _lt("The DNS lookup of %(name)s failed (%(reason)s)."), name=name, reason=type(exc).__name__
            ) from None

    def _get(self, host, port, path):
        """GET over verified HTTPS, resolving ``host`` through our resolver; public addresses only."""
        addresses = self._lookup(host, "A") or self._lookup(host, "AAAA")
        if not addresses:
            raise MailboxError(_lt("%(host)s has no address in DNS."), host=host)
        try:
            check_addresses(host, [answer.address for answer in addresses], allow_private=self.allow_private)
        except HostNotAllowed:
            raise MailboxError(
                _lt("%(host)s is on a private or local network, which is not allowed. It was not contacted."),
                host=host,
            ) from None
        context = tls_context(self.ca_file)
        connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)
        try:
            # Connect to the address found, but check the certificate against the host name.
            raw = socket.create_connection((addresses[0].address, port), timeout=self.timeout)
            connection.sock = context.wrap_socket(raw, server_hostname=host)
            connection.request("GET", path)
            response = connection.getresponse()
            if response.status != 200:
                raise MailboxError(
                    _lt("%(host)s answered with HTTP status %(status)s."), host=host, status=response.status
                )
            body = response.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise _network_failure(exc, host) from None
        finally:
            connection.close()
        if len(body) > MAX_RESPONSE_BYTES:
            raise MailboxError(_lt("The answer of %(host)s is too large."), host=host)
        return body


class _RefuseDoctype(ElementTree.TreeBuilder):
    """Entity declarations live in a DOCTYPE: refusing it stops entity bombs."""

    def doctype(self, name, pubid, system):
        raise ValueError("the file declares a DOCTYPE")


def _read_config(body, host, address):
    parser = ElementTree.XMLParser(target=_RefuseDoctype())
    try:
        parser.feed(body)
        root = parser.close()
    except (ElementTree.ParseError, ValueError) as exc:
        raise _invalid_config(host, str(exc)) from None
    if root.tag != "clientConfig":
        raise _invalid_config(host, "no clientConfig element")
    incoming = root.findall("emailProvider/incomingServer[@type='imap']")
    outgoing = root.findall("emailProvider/outgoingServer[@type='smtp']")
    imap, imap_entry = _secure_server(incoming, host, address)
    smtp, _ = _secure_server(outgoing, host, address)
    if imap or smtp:
        login = _expand(imap_entry.findtext("username", "%EMAILADDRESS%"), address) if imap else None
        return Offer(imap, smtp, login)
    if incoming or outgoing:
        raise MailboxError(
            _lt("%(host)s offers only unencrypted connections, which are not allowed."), host=host
        )
    raise MailboxError(_lt("The configuration from %(host)s lists no IMAP or SMTP server."), host=host)


def _secure_server(entries, host, address):
    """The first SSL entry, else the first STARTTLS one: (Server, entry) or (None, None)."""
    for socket_type, security in SOCKET_TYPES.items():
        for entry in entries:
            if (entry.findtext("socketType") or "").strip().upper() == socket_type:
                try:
                    hostname = _expand(entry.findtext("hostname", "").strip(), address).lower()
                    return Server(hostname, int(entry.findtext("port", "")), security), entry
                except ValueError:
                    raise _invalid_config(host, "a port is not a number") from None
    return None, None


def _expand(template, address):
    local_part, _, domain = address.rpartition("@")
    return (
        template.replace("%EMAILADDRESS%", address)
        .replace("%EMAILLOCALPART%", local_part)
        .replace("%EMAILDOMAIN%", domain)
    )


def _invalid_config(host, reason):
    return MailboxError(
        _lt("The file from %(host)s is not a valid mail configuration (%(reason)s)."),
        host=host,
        reason=reason,
    )


def _network_failure(exc, host):
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailboxError(
            _lt("The certificate of %(host)s is not trusted (%(reason)s)."),
            host=host,
            reason=exc.verify_message or "verification failed",
        )
    if isinstance(exc, TimeoutError):
        return MailboxError(_lt("%(host)s did not answer in time."), host=host)
    if isinstance(exc, ConnectionRefusedError):
        return MailboxError(_lt("%(host)s refused the connection."), host=host)
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return MailboxError(_lt("%(host)s could not be reached (%(reason)s)."), host=host, reason=reason)


def _found(source, offer):
    params = {"imap": _describe(offer.imap), "smtp": _describe(offer.smtp)}
    if offer.imap and offer.smtp:
        return Step(source, _lt("Found IMAP %(imap)s and SMTP %(smtp)s."), params)
    if offer.imap:
        return Step(source, _lt("Found IMAP %(imap)s, but no SMTP server."), params)
    return Step(source, _lt("Found SMTP %(smtp)s, but no IMAP server."), params)


def _describe(server):
    if not server:
        return ""
    return f"{server.host}:{server.port} ({'SSL/TLS' if server.security == 'ssl' else 'STARTTLS'})"


def _domain_of(address):
    """The address's domain in ASCII (IDNA), or None if this is not an e-mail address."""
    local_part, _, domain = address.rpartition("@")
    try:
        domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if local_part and re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain):
        return domain
    return None


def _inside(host, domain):
    return host == domain or host.endswith(f".{domain}")
