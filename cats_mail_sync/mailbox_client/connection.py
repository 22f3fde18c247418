"""The one place where a connection to a mail server is made.

Only encrypted connections exist here: implicit TLS (``ssl``) or a STARTTLS
upgrade that must succeed before any credential is sent (``starttls``).
Certificates and host names are always verified, against the system trust
store plus, optionally, one extra CA bundle an administrator configured.

Servers are chosen by users, so the host is resolved first and refused when
any of its addresses is not on the public internet (loopback, private,
link-local...), unless the caller passes ``allow_private=True``; the connection
then goes to the addresses that were checked. Every way a port can fail gives
the same :class:`errors.ServerUnreachable`: these functions are no port scanner.

Sign-in is with a password or with an OAuth2 access token (SASL XOAUTH2, as
Gmail and Microsoft 365 want it): ``open_imap``/``open_smtp`` take exactly one of
``password`` and ``access_token``, through the same code: same guard, same
certificate checks, same error mapping. A refused token is :class:`errors.TokenRefused`.
Neither ever appears in an error text.
"""

import contextlib
import functools
import imaplib
import ipaddress
import os
import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from . import errors

SECURITY_MODES = ("ssl", "starttls")
CONNECT_TIMEOUT = 15
READ_TIMEOUT = 60
# A TLS context (and the system trust store it loaded) is made again after this many seconds.
TRUST_STORE_SECONDS = 3600


@dataclass(frozen=True)
class Server:
    """Where a mail server listens and how it is secured."""

    host: str
    port: int
    security: str = "ssl"

    def __post_init__(self):
        if not self.host or any(c.isspace() for c in self.host):
            raise errors.InvalidSettings(reason="no valid host name")
        if not 0 < int(self.port) < 65536:
            raise errors.InvalidSettings(reason=f"port {self.port} is out of range")
        if self.security not in SECURITY_MODES:
            raise errors.InvalidSettings(reason="only SSL/TLS or STARTTLS connections are allowed")


# RFC 6750's b64token: what a bearer token may hold (no spaces, no control characters).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def _credentials(login, password, access_token):
    """Check that exactly one of ``password`` and ``access_token`` is given, and a sound token."""
    if (password is None) == (access_token is None):
        raise TypeError("give exactly one of password and access_token")
    if access_token is None:
        return
    if not login or any(c in login for c in "\x00\x01\r\n"):
        raise errors.InvalidSettings(reason="no valid login name")
    if not _BEARER_TOKEN.fullmatch(access_token):
        raise errors.TokenRefused()


def xoauth2_string(login, access_token):
    """The SASL XOAUTH2 initial response, unencoded: "user=...\\1auth=Bearer ...\\1\\1"."""
    return f"user={login}\x01auth=Bearer {access_token}\x01\x01"


def tls_context(ca_file=None):
    """A verifying TLS context: system trust store, plus ``ca_file`` if given.

    Loading the trust store takes longer than an idle mailbox's whole check on a near server
    (about 10 ms), so contexts are shared (a context is safe to use from several threads and is
    never changed once made): a new one is made when ``ca_file`` changes on disk, and at least
    hourly, which picks up an updated system trust store.
    """
    changed = os.stat(ca_file).st_mtime_ns if ca_file and os.path.exists(ca_file) else None
    return _tls_context(ca_file, changed, int(time.monotonic() // TRUST_STORE_SECONDS))


@functools.lru_cache(maxsize=8)
def _tls_context(ca_file, _changed, _hour):
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


# IPv6 addresses of IPv4 ones behind a NAT64 gateway (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address):
    """True if ``address`` (an IP address, as text) is on the public internet.

    Refused: loopback, private, shared (100.64/10), link-local, site-local,
    multicast, reserved and unspecified addresses, and IPv6 addresses that
    carry such an IPv4 address (IPv4-mapped, 6to4, NAT64).
    """
    ip = ipaddress.ip_address(address)
    candidates = [ip]
    if ip.version == 6 and ip.ipv4_mapped:  # the connection goes to the IPv4 address
        candidates = [ip.ipv4_mapped]
    elif ip in _NAT64:  # so does this one, through a gateway (the prefix counts as reserved)
        candidates = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    elif ip.version == 6 and ip.sixtofour:
        candidates.append(ip.sixtofour)
    return all(
        candidate.is_global
        and not (
            candidate.is_multicast
            or candidate.is_private
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_reserved
            or candidate.is_unspecified
            or getattr(candidate, "is_site_local", False)
        )
        for candidate in candidates
    )


def check_addresses(host, addresses, *, allow_private=False):
    """The guard: refuse ``host`` unless every one of its ``addresses`` is public.

    Raises :class:`errors.HostNotAllowed`; does nothing when ``allow_private`` is
    True, or a collection of host names that holds ``host`` (an administrator's
    choice). Used here and by :mod:`.discovery`.
    """
    if allow_private is True or (allow_private and host.lower().rstrip(".") in allow_private):
        return
    for address in addresses:
        try:
            public = is_public(address)
        except ValueError:  # not an IP address: nothing to connect to that we know of
            public = False
        if not public:
            raise errors.HostNotAllowed(host=host)


def resolve(host, port, *, allow_private=False):
    """Resolve ``host`` and check its addresses; return ``[(family, sockaddr), ...]``.

    Host names and IP literals alike go through ``getaddrinfo``, so that any
    spelling of an address ("127.1", "0x7f000001", "::ffff:127.0.0.1") is
    checked as the address it is. Raises :class:`errors.ServerNotFound` or
    :class:`errors.HostNotAllowed`.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise errors.ServerNotFound(host=host) from None
    addresses = [(family, sockaddr) for family, _type, _proto, _name, sockaddr in found]
    if not addresses:
        raise errors.ServerNotFound(host=host)
    check_addresses(host, [sockaddr[0] for _family, sockaddr in addresses], allow_private=allow_private)
    return addresses


def _connect(addresses, timeout):
    """A TCP connection to the first of ``addresses`` that takes it (like socket.create_connection)."""
    failure = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        return sock
    raise failure


class _IMAP4(imaplib.IMAP4):
    """imaplib's IMAP4 over a connection to checked addresses; implicit TLS if given a context.

    ``host`` stays the server's name: certificates (here and at STARTTLS) are
    checked against it.
    """

    def __init__(self, host, port, addresses, context, timeout):
        self._addresses = addresses
        self._context = context
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout=None):
        sock = _connect(self._addresses, timeout)
        if self._context is None:
            return sock
        try:
            return self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _IMAPClient(imapclient.IMAPClient):
    """IMAPClient connecting to the addresses that were checked, not to a new DNS answer."""

    def __init__(self, addresses, *args, **kwargs):
        self._addresses = addresses
        super().__init__(*args, **kwargs)

    def _create_IMAP4(self):
        context = self.ssl_context if self.ssl else None
        connect_timeout = getattr(self._timeout, "connect", None)
        return _IMAP4(self.host, self.port, self._addresses, context, connect_timeout)


class _SMTP(smtplib.SMTP):
    """smtplib's SMTP connecting to the addresses that were checked.

    smtplib keeps the host name (``_host``) for the certificate check of
    SMTP_SSL and STARTTLS; only the TCP connection is made here.
    """

    def __init__(self, addresses, *args, **kwargs):
        self._addresses = addresses
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        return _connect(self._addresses, timeout)


class _SMTP_SSL(smtplib.SMTP_SSL, _SMTP):
    """SMTP_SSL: wraps the socket of :class:`_SMTP` in TLS, checked against the host name."""

    def __init__(self, addresses, *args, **kwargs):
        # SMTP_SSL.__init__ calls SMTP.__init__ directly, not _SMTP's.
        self._addresses = addresses
        smtplib.SMTP_SSL.__init__(self, *args, **kwargs)


def explain(exc, server):
    """Turn a low-level network, TLS or protocol exception into a :class:`MailboxError`.

    A certificate problem and an unknown host name are told as such; every other
    failure (refused, timed out, no route, reset, a TLS handshake with something
    that does not speak TLS, a greeting that is not IMAP or SMTP) is the same
    :class:`errors.ServerUnreachable`, so that an open port of another service
    looks like a closed one.
    """
    if isinstance(exc, errors.MailboxError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return errors.CertificateNotTrusted(
            host=server.host, reason=exc.verify_message or "verification failed"
        )
    if isinstance(exc, socket.gaierror):
        return errors.ServerNotFound(host=server.host)
    return errors.ServerUnreachable(host=server.host, port=server.port)


# RFC 5530 codes of a LOGIN that failed for a reason other than the credentials.
TEMPORARY_CODES = ("[UNAVAILABLE]", "[SERVERBUG]", "[INUSE]", "[LIMIT]", "[CONTACTADMIN]")


def refused_login(text):
    """Whether imapclient's LoginError text is the server refusing the credentials.

    A lost connection ("socket error", "EOF") or a busy server (RFC 5530 codes
    above) is trouble to retry, not a wrong password.
    """
    upper = text.upper()
    if "SOCKET ERROR" in upper or "EOF" in upper or any(code in upper for code in TEMPORARY_CODES):
        return False
    return True


def open_imap(
    server, login, password=None, *, access_token=None, ca_file=None, timeout=None, allow_private=False
):
    """Connect, secure and log in to an IMAP server; return an IMAPClient.

    Log in with ``password`` (LOGIN) or ``access_token`` (AUTHENTICATE XOAUTH2),
    exactly one of them. The host must resolve to public addresses only unless
    ``allow_private``. Raises :class:`errors.MailboxError` subclasses only (a
    refused password :class:`errors.AuthenticationFailed`, a refused token
    :class:`errors.TokenRefused`).
    """
    _credentials(login, password, access_token)
    refused = errors.AuthenticationFailed if access_token is None else errors.TokenRefused
    addresses = resolve(server.host, server.port, allow_private=allow_private)
    context = tls_context(ca_file)
    timeout = timeout or imapclient.SocketTimeout(CONNECT_TIMEOUT, READ_TIMEOUT)
    try:
        client = _IMAPClient(
            addresses,
            server.host,
            port=server.port,
            ssl=server.security == "ssl",
            ssl_context=context,
            timeout=timeout,
        )
    except (OSError, IMAPClientError) as exc:
        raise explain(exc, server) from None
    try:
        if server.security == "starttls":
            if b"STARTTLS" not in client.capabilities():
                raise errors.SecureConnectionUnavailable(host=server.host, port=server.port)
            client.starttls(context)
        if access_token is None:
            client.login(login, password)
        else:
            client.oauth2_login(login, access_token)
    except LoginError as exc:
        _close(client)
        # imapclient reports a refused password, a server that is busy and a connection lost
        # during LOGIN alike: only the first is the recruiter's to fix.
        if refused_login(str(exc)):
            raise refused() from None
        raise errors.ServerUnreachable(host=server.host, port=server.port) from None
    except errors.MailboxError:
        _close(client)
        raise
    except (OSError, IMAPClientError) as exc:
        _close(client)
        raise explain(exc, server) from None
    return client


def open_smtp(
    server,
    login,
    password=None,
    *,
    access_token=None,
    ca_file=None,
    timeout=CONNECT_TIMEOUT,
    allow_private=False,
):
    """Connect, secure and authenticate to an SMTP submission server.

    Authenticate with ``password`` (AUTH PLAIN/LOGIN) or ``access_token`` (AUTH
    XOAUTH2), exactly one of them. The host must resolve to public addresses only
    unless ``allow_private``. Returns the logged-in :class:`smtplib.SMTP`; raises
    :class:`errors.MailboxError` (a refused token: :class:`errors.TokenRefused`).
    """
    _credentials(login, password, access_token)
    addresses = resolve(server.host, server.port, allow_private=allow_private)
    context = tls_context(ca_file)
    try:
        if server.security == "ssl":
            smtp = _SMTP_SSL(addresses, server.host, server.port, timeout=timeout, context=context)
        else:
            smtp = _SMTP(addresses, server.host, server.port, timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise explain(exc, server) from None
    try:
        if server.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise errors.SecureConnectionUnavailable(host=server.host, port=server.port)
            smtp.starttls(context=context)
        if access_token is None:
            smtp.login(login, password)
        else:
            _smtp_xoauth2(smtp, login, access_token)
    except smtplib.SMTPAuthenticationError as exc:
        _close(smtp)
        if access_token is None:
            raise errors.AuthenticationFailed() from None
        if 400 <= exc.smtp_code < 500:  # 454: the server could not check the token now
            raise errors.ServerUnreachable(host=server.host, port=server.port) from None
        raise errors.TokenRefused() from None
    except errors.MailboxError:
        _close(smtp)
        raise
    except (OSError, smtplib.SMTPException) as exc:
        _close(smtp)
        raise explain(exc, server) from None
    return smtp


def _smtp_xoauth2(smtp, login, access_token):
    """AUTH XOAUTH2 with the initial response; a refused token gets a 334 with the server's
    error, answered with an empty line (then 535): the token is sent once."""
    smtp.ehlo_or_helo_if_needed()
    initial = xoauth2_string(login, access_token)
    smtp.auth("XOAUTH2", lambda challenge=None: "" if challenge else initial, initial_response_ok=True)


def _close(connection):
    with contextlib.suppress(OSError, IMAPClientError, smtplib.SMTPException):
        if isinstance(connection, smtplib.SMTP):
            connection.close()
        else:
            connection.shutdown()
