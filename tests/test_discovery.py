"""discovery.discover() against a real local DNS server and HTTPS server, no Odoo."""

import socket

import dns.resolver
import pytest

from harness import tls
from harness.autoconfig_server import AutoconfigServer
from harness.dns_server import DnsServer
from mailbox_client import discovery
from mailbox_client.connection import Server

ADDRESS = "anna.recruiter@example.test"
AUTOCONFIG_PATH = "/mail/config-v1.1.xml"
WELL_KNOWN_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"
ISPDB_PATH = "/v1.1/example.test"
LOOPBACK = [("A", "127.0.0.1")]


def client_config(*servers):
    """An autoconfig file; each server is (tag, type, hostname, port, socketType[, username[, auth]])."""
    entries = []
    for tag, kind, hostname, port, socket_type, *rest in servers:
        username = f"<username>{rest[0]}</username>" if rest else ""
        auth = rest[1] if len(rest) > 1 else "password-cleartext"
        entries.append(
            f'<{tag} type="{kind}"><hostname>{hostname}</hostname><port>{port}</port>'
            f"<socketType>{socket_type}</socketType>{username}"
            f"<authentication>{auth}</authentication></{tag}>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<clientConfig version="1.1">'
        f'<emailProvider id="example.test"><domain>example.test</domain>{"".join(entries)}'
        "</emailProvider></clientConfig>"
    )


SIMPLE_CONFIG = client_config(
    ("incomingServer", "imap", "imap.example.test", 993, "SSL"),
    ("outgoingServer", "smtp", "smtp.example.test", 465, "SSL"),
)


def run(dns_server, address=ADDRESS, *, web=None, **options):
    options.setdefault("ispdb_url", "https://ispdb.example.test/v1.1/")
    options.setdefault("allow_private", True)  # the test servers are on loopback
    return discovery.discover(
        address,
        resolver=dns_server.resolver(),
        https_port=web.port if web else free_port(),
        ca_file=tls.authority().ca_file,
        timeout=options.pop("timeout", 2.0),
        **options,
    )


def outcomes(detection):
    return [(step.source, step.outcome) for step in detection.steps]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gmail_preset_is_used_without_network():
    unreachable = dns.resolver.Resolver(configure=False)
    unreachable.nameservers = ["127.0.0.1"]
    unreachable.port = free_port()

    detection = discovery.discover(ADDRESS, "gmail", resolver=unreachable, timeout=0.5)

    assert detection.found
    assert detection.imap == Server("imap.gmail.com", 993, "ssl")
    assert detection.smtp == Server("smtp.gmail.com", 465, "ssl")
    assert detection.login == ADDRESS
    assert detection.source == "preset"
    assert outcomes(detection) == [
        ("preset", "Found IMAP imap.gmail.com:993 (SSL/TLS) and SMTP smtp.gmail.com:465 (SSL/TLS).")
    ]
    assert detection.needs_confirmation is False  # outside example.test, but a known provider
    assert "app password" in detection.note


def test_providers_are_ordered_with_labels_and_presets():
    assert list(discovery.PROVIDERS) == [
        "gmail",
        "outlook",
        "office365",
        "exchange",
        "yahoo",
        "icloud",
        "other",
    ]
    assert discovery.PROVIDERS["office365"].label == "Microsoft 365 / Office 365"
    assert discovery.PROVIDERS["outlook"].smtp == Server("smtp-mail.outlook.com", 587, "starttls")
    assert discovery.PROVIDERS["icloud"].imap == Server("imap.mail.me.com", 993, "ssl")
    assert discovery.PROVIDERS["exchange"].imap is None
    assert discovery.PROVIDERS["other"].imap is None


def test_domain_autoconfig_prefers_ssl_ignores_plain_and_expands_login():
    config = client_config(
        ("incomingServer", "imap", "plain.example.test", 143, "plain", "%EMAILADDRESS%"),
        ("incomingServer", "imap", "imap.example.test", 143, "STARTTLS", "%EMAILADDRESS%"),
        ("incomingServer", "imap", "imap.%EMAILDOMAIN%", 993, "SSL", "%EMAILLOCALPART%"),
        ("outgoingServer", "smtp", "smtp.example.test", 587, "STARTTLS"),
        ("outgoingServer", "smtp", "smtp.example.test", 465, "SSL"),
    )
    records = {"autoconfig.example.test": LOOPBACK}
    with DnsServer(records) as dns_server, AutoconfigServer({AUTOCONFIG_PATH: (200, config)}) as web:
        detection = run(dns_server, web=web)

    assert detection.imap == Server("imap.example.test", 993, "ssl")
    assert detection.smtp == Server("smtp.example.test", 465, "ssl")
    assert detection.login == "anna.recruiter"
    assert detection.source == "autoconfig"
    assert detection.needs_confirmation is False
    assert detection.note is None
    assert outcomes(detection) == [
        (
            "autoconfig",
            "Found IMAP imap.example.test:993 (SSL/TLS) and SMTP smtp.example.test:465 (SSL/TLS).",
        )
    ]
    assert web.requests == [
        (f"autoconfig.example.test:{web.port}", f"{AUTOCONFIG_PATH}?emailaddress={ADDRESS}")
    ]


def test_well_known_address_when_autoconfig_host_does_not_exist():
    records = {"example.test": LOOPBACK}
    routes = {WELL_KNOWN_PATH: (200, SIMPLE_CONFIG)}
    with DnsServer(records) as dns_server, AutoconfigServer(routes, names=["example.test"]) as web:
        detection = run(dns_server, web=web)

    assert detection.source == "well-known"
    assert detection.imap == Server("imap.example.test", 993, "ssl")
    assert detection.smtp == Server("smtp.example.test", 465, "ssl")
    assert detection.login == ADDRESS
    assert outcomes(detection)[0] == ("autoconfig", "autoconfig.example.test has no address in DNS.")
    assert [step.source for step in detection.steps] == ["autoconfig", "well-known"]


def test_srv_records_when_no_autoconfig_and_dot_means_not_offered():
    records = {
        "_imaps._tcp.example.test": [("SRV", "0 0 0 .")],
        "_imap._tcp.example.test": [("SRV", "0 1 143 mail.example.test")],
        "_submissions._tcp.example.test": [
            ("SRV", "20 1 465 backup-smtp.example.test"),
            ("SRV", "10 1 465 smtp.example.test"),
        ],
    }
    with DnsServer(records) as dns_server:
        detection = run(dns_server, provider="exchange")

    assert detection.imap == Server("mail.example.test", 143, "starttls")
    assert detection.smtp == Server("smtp.example.test", 465, "ssl")
    assert detection.source == "srv"
    assert outcomes(detection) == [
        ("autoconfig", "autoconfig.example.test has no address in DNS."),
        ("well-known", "example.test has no address in DNS."),
        ("srv", "Found IMAP mail.example.test:143 (STARTTLS) and SMTP smtp.example.test:465 (SSL/TLS)."),
    ]


def test_nothing_found_explains_every_source_and_keeps_the_login():
    not_offered = [("SRV", "0 0 0 .")]
    records = {
        "example.test": [("MX", "10 mx.example.test")],
        "_imaps._tcp.example.test": not_offered,
        "_imap._tcp.example.test": not_offered,
        "_submissions._tcp.example.test": not_offered,
        "_submission._tcp.example.test": not_offered,
    }
    with DnsServer(records) as dns_server:
        detection = run(dns_server)

    assert not detection.found
    assert detection.smtp is None
    assert detection.login == ADDRESS
    assert detection.source == ""
    assert outcomes(detection) == [
        ("autoconfig", "autoconfig.example.test has no address in DNS."),
        ("well-known", "example.test has no address in DNS."),
        ("srv", "No IMAP or SMTP submission service is published for example.test."),
        ("ispdb", "ispdb.example.test has no address in DNS."),
        ("mx", "The mail exchanger mx.example.test is not a known provider."),
    ]


def test_ispdb_with_oauth_entry_outside_the_domain_needs_confirmation():
    config = client_config(
        ("incomingServer", "imap", "imap.hoster.test", 993, "SSL", "%EMAILADDRESS%", "OAuth2"),
        ("outgoingServer", "smtp", "smtp.hoster.test", 587, "STARTTLS"),
    )
    records = {"ispdb.example.test": LOOPBACK}
    routes = {ISPDB_PATH: (200, config)}
    with DnsServer(records) as dns_server, AutoconfigServer(routes) as web:
        detection = run(dns_server, ispdb_url=f"https://ispdb.example.test:{web.port}/v1.1/")

    assert detection.source == "ispdb"
    assert detection.imap == Server("imap.hoster.test", 993, "ssl")
    assert detection.smtp == Server("smtp.hoster.test", 587, "starttls")
    assert detection.needs_confirmation is True
    assert web.requests == [(f"ispdb.example.test:{web.port}", ISPDB_PATH)]


@pytest.mark.parametrize(
    ("exchanger", "provider"),
    [("aspmx.l.google.com", "gmail"), ("example-test.mail.protection.outlook.com", "office365")],
)
def test_mx_of_a_known_provider_gives_its_preset(exchanger, provider):
    records = {"example.test": [("MX", "20 mx.backup.test"), ("MX", f"10 {exchanger}")]}
    with DnsServer(records) as dns_server:
        detection = run(dns_server)

    preset = discovery.PROVIDERS[provider]
    assert (detection.imap, detection.smtp) == (preset.imap, preset.smtp)
    assert detection.source == "mx"
    assert detection.note == preset.note
    assert detection.needs_confirmation is False
    assert detection.steps[-1].source == "mx"


def test_domain_autoconfig_wins_over_ispdb_and_stops_the_search():
    ispdb_config = client_config(
        ("incomingServer", "imap", "imap.hoster.test", 993, "SSL"),
        ("outgoingServer", "smtp", "smtp.hoster.test", 465, "SSL"),
    )
    records = {"autoconfig.example.test": LOOPBACK, "ispdb.example.test": LOOPBACK}
    routes = {AUTOCONFIG_PATH: (200, SIMPLE_CONFIG), ISPDB_PATH: (200, ispdb_config)}
    with DnsServer(records) as dns_server, AutoconfigServer(routes) as web:
        detection = run(dns_server, web=web, ispdb_url=f"https://ispdb.example.test:{web.port}/v1.1/")

    assert detection.imap == Server("imap.example.test", 993, "ssl")
    assert detection.smtp == Server("smtp.example.test", 465, "ssl")
    assert [path for _, path in web.requests] == [f"{AUTOCONFIG_PATH}?emailaddress={ADDRESS}"]


def test_missing_smtp_is_taken_from_a_later_source():
    own_config = client_config(
        ("incomingServer", "imap", "imap.example.test", 993, "SSL", "%EMAILLOCALPART%")
    )
    ispdb_config = client_config(
        ("incomingServer", "imap", "imap.hoster.test", 993, "SSL"),
        ("outgoingServer", "smtp", "smtp.hoster.test", 465, "SSL"),
    )
    records = {"autoconfig.example.test": LOOPBACK, "ispdb.example.test": LOOPBACK}
    routes = {AUTOCONFIG_PATH: (200, own_config), ISPDB_PATH: (200, ispdb_config)}
    with DnsServer(records) as dns_server, AutoconfigServer(routes) as web:
        detection = run(dns_server, web=web, ispdb_url=f"https://ispdb.example.test:{web.port}/v1.1/")

    assert detection.imap == Server("imap.example.test", 993, "ssl")
    assert detection.login == "anna.recruiter"
    assert detection.source == "autoconfig"
    assert detection.smtp == Server("smtp.hoster.test", 465, "ssl")
    assert detection.needs_confirmation is True
    assert outcomes(detection)[0] == (
        "autoconfig",
        "Found IMAP imap.example.test:993 (SSL/TLS), but no SMTP server.",
    )


SRV_FALLBACK = {
    "_imaps._tcp.example.test": [("SRV", "0 1 993 mail.example.test")],
    "_submission._tcp.example.test": [("SRV", "0 1 587 mail.example.test")],
}


def test_slow_autoconfig_server_times_out_and_the_next_source_answers():
    records = {"autoconfig.example.test": LOOPBACK, **SRV_FALLBACK}
    routes = {AUTOCONFIG_PATH: (200, SIMPLE_CONFIG, 30)}
    with DnsServer(records) as dns_server, AutoconfigServer(routes) as web:
        detection = run(dns_server, web=web, timeout=0.5)

    assert outcomes(detection)[0] == ("autoconfig", "autoconfig.example.test did not answer in time.")
    assert detection.source == "srv"
    assert detection.imap == Server("mail.example.test", 993, "ssl")
    assert detection.smtp == Server("mail.example.test", 587, "starttls")


def test_silent_dns_server_times_out_and_the_next_source_answers():
    with DnsServer(SRV_FALLBACK, silent=["autoconfig.example.test"]) as dns_server:
        detection = run(dns_server, timeout=0.5)

    assert outcomes(detection)[0] == ("autoconfig", "The DNS lookup of autoconfig.example.test timed out.")
    assert detection.source == "srv"


def test_refused_connection_is_a_step():
    with DnsServer({"autoconfig.example.test": LOOPBACK}) as dns_server:
        detection = run(dns_server)

    assert not detection.found
    assert outcomes(detection)[0] == ("autoconfig", "autoconfig.example.test refused the connection.")


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<clientConfig><emailProvider><incomingServer type='imap'><hostname>&lol2;</hostname>"
    "</incomingServer></emailProvider></clientConfig>"
)
PLAIN_ONLY = client_config(
    ("incomingServer", "imap", "imap.example.test", 143, "plain"),
    ("outgoingServer", "smtp", "smtp.example.test", 25, "plain"),
)
HOST = "autoconfig.example.test"


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (404, "not here", f"{HOST} answered with HTTP status 404."),
        (
            200,
            "<clientConfig><emailProvider>",
            f"The file from {HOST} is not a valid mail configuration (no element found: line 1, column 29).",
        ),
        (200, BOMB, f"The file from {HOST} is not a valid mail configuration (the file declares a DOCTYPE)."),
        (
            200,
            "<html>hello</html>",
            f"The file from {HOST} is not a valid mail configuration (no clientConfig element).",
        ),
        (200, PLAIN_ONLY, f"{HOST} offers only unencrypted connections, which are not allowed."),
        (200, client_config(), f"The configuration from {HOST} lists no IMAP or SMTP server."),
        (
            200,
            client_config(("incomingServer", "imap", "imap.example.test", "imaps", "SSL")),
            f"The file from {HOST} is not a valid mail configuration (a port is not a number).",
        ),
        (200, "x" * 1_000_001, f"The answer of {HOST} is too large."),
    ],
    ids=["404", "broken", "doctype", "not-autoconfig", "plain-only", "empty", "bad-port", "too-large"],
)
def test_bad_answers_are_reported_not_raised(status, body, outcome):
    with (
        DnsServer({HOST: LOOPBACK}) as dns_server,
        AutoconfigServer({AUTOCONFIG_PATH: (status, body)}) as web,
    ):
        detection = run(dns_server, web=web)

    assert not detection.found
    assert detection.smtp is None
    assert outcomes(detection)[0] == ("autoconfig", outcome)


@pytest.mark.parametrize(
    ("address", "other_authority", "reason"),
    [
        (ADDRESS, True, "unable to get local issuer certificate"),
        (
            "anna@other.test",
            False,
            "Hostname mismatch, certificate is not valid for 'autoconfig.other.test'.",
        ),
    ],
    ids=["unknown-ca", "wrong-name"],
)
def test_untrusted_certificate_is_refused(address, other_authority, reason):
    host = f"autoconfig.{address.partition('@')[2]}"
    routes = {AUTOCONFIG_PATH: (200, SIMPLE_CONFIG)}
    authority = tls.TestAuthority() if other_authority else None
    with DnsServer({host: LOOPBACK}) as dns_server, AutoconfigServer(routes, authority=authority) as web:
        detection = run(dns_server, address, web=web)

    assert not detection.found
    assert outcomes(detection)[0] == ("autoconfig", f"The certificate of {host} is not trusted ({reason}).")
    assert web.requests == []


@pytest.mark.parametrize(
    "address", ["anna.recruiter", "@example.test", "anna@", "anna@exa mple.test", "anna@.test"]
)
def test_invalid_address_is_explained(address):
    detection = discovery.discover(address, "gmail")

    assert not detection.found
    assert detection.login == address
    assert outcomes(detection) == [("address", "This is not a valid e-mail address.")]


PRIVATE = "is on a private or local network, which is not allowed. It was not contacted."


def test_private_addresses_are_not_fetched_without_permission():
    records = {
        "autoconfig.example.test": LOOPBACK,
        "example.test": [("AAAA", "::1")],
        # One private address among public ones is enough to refuse the host.
        "ispdb.example.test": [("A", "93.184.215.14"), ("A", "10.0.0.7")],
    }
    with DnsServer(records) as dns_server, socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        detection = discovery.discover(
            ADDRESS,
            resolver=dns_server.resolver(),
            https_port=port,
            ca_file=tls.authority().ca_file,
            ispdb_url=f"https://ispdb.example.test:{port}/v1.1/",
            timeout=2.0,
            allow_private=False,
        )
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected

    assert not detection.found
    assert outcomes(detection) == [
        ("autoconfig", f"autoconfig.example.test {PRIVATE}"),
        ("well-known", f"example.test {PRIVATE}"),
        ("srv", "No IMAP or SMTP submission service is published for example.test."),
        ("ispdb", f"ispdb.example.test {PRIVATE}"),
        ("mx", "example.test has no MX record."),
    ]


def test_the_guard_is_on_by_default_and_settings_from_dns_are_still_returned():
    # SRV targets are only settings: the connection guard checks them when they are used.
    records = {"autoconfig.example.test": LOOPBACK, **SRV_FALLBACK, "mail.example.test": LOOPBACK}
    routes = {AUTOCONFIG_PATH: (200, SIMPLE_CONFIG)}
    with DnsServer(records) as dns_server, AutoconfigServer(routes) as web:
        detection = discovery.discover(
            ADDRESS, resolver=dns_server.resolver(), https_port=web.port, ca_file=tls.authority().ca_file
        )

    assert web.requests == []
    assert outcomes(detection)[0] == ("autoconfig", f"autoconfig.example.test {PRIVATE}")
    assert detection.source == "srv"
    assert detection.imap == Server("mail.example.test", 993, "ssl")
