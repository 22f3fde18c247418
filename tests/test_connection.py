"""Network failures and the private-address guard, the same way for IMAP and SMTP, in either security mode."""

import contextlib
import socket
import ssl
import struct
import threading

import imapclient
import pytest

from harness import tls
from harness.dovecot import Dovecot, free_port
from harness.smtp_server import SMTPTestServer
from mailbox_client import connection, errors

LOGIN, PASSWORD = "anna.recruiter@example.test", "Tr0ub4dor&3-horse"
# Each protocol's opener and a short timeout in the form it takes.
OPENERS = {
    "imap": (connection.open_imap, imapclient.SocketTimeout(0.5, 0.5)),
    "smtp": (connection.open_smtp, 0.5),
}
CASES = [(protocol, security) for protocol in OPENERS for security in connection.SECURITY_MODES]


def open_server(protocol, host, port, security, **options):
    opener, timeout = OPENERS[protocol]
    options.setdefault("timeout", timeout)
    return opener(connection.Server(host, port, security), LOGIN, PASSWORD, **options)


# ----------------------------------------------------------------------
# No mail server: one answer, whatever the port does
# ----------------------------------------------------------------------


class FakeService:
    """A service on 127.0.0.1 that is no mail server; ``kind`` says how it behaves.

    silent: accepts and never speaks. reset: accepts and resets the connection.
    banner: greets like an SSH server (not TLS, not IMAP, not SMTP), then waits.
    """

    def __init__(self, kind):
        self.kind = kind
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn, contextlib.suppress(OSError):
            if self.kind == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if self.kind == "banner":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
            self.closing.wait(10)

    def close(self):
        self.closing.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def service(request):
    """The port of a closed port or of a :class:`FakeService` of kind ``request.param``."""
    if request.param == "closed":
        yield free_port()
        return
    fake = FakeService(request.param)
    yield fake.port
    fake.close()


@pytest.mark.parametrize("service", ["closed", "silent", "reset", "banner"], indirect=True)
@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_no_mail_server_is_one_answer_whatever_the_port_does(protocol, security, service):
    with pytest.raises(errors.ServerUnreachable) as info:
        open_server(protocol, "127.0.0.1", service, security, allow_private=True)
    assert info.value.params == {"host": "127.0.0.1", "port": service}
    assert str(info.value) == (
        f"No mail server answered at 127.0.0.1 on port {service}. "
        "Check the server name, the port and the security setting."
    )
    assert info.value.definitive is False
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True


@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_unknown_host(protocol, security):
    with pytest.raises(errors.ServerNotFound) as info:
        open_server(protocol, "nonexistent.invalid", 993, security)
    assert info.value.params == {"host": "nonexistent.invalid"}
    assert "nonexistent.invalid does not exist" in str(info.value)


# ----------------------------------------------------------------------
# The guard: public addresses only, unless allowed
# ----------------------------------------------------------------------

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "127.1", "0x7f000001", "2130706433", "0.0.0.0", "::1"]
OTHER_PRIVATE_HOSTS = [
    "::ffff:127.0.0.1",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.1.10",
    "169.254.169.254",
    "100.64.0.1",
    "fd00::1",
    "fe80::1",
    "fec0::1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "2002:7f00:1::",
    "64:ff9b::a00:1",
]


@pytest.fixture
def listeners():
    """Listening sockets on 127.0.0.1 and ::1, one port; yields a function telling if any got a connection."""
    with socket.create_server(("127.0.0.1", 0)) as ipv4:
        port = ipv4.getsockname()[1]
        with socket.create_server(("::1", port), family=socket.AF_INET6) as ipv6:

            def connected():
                for listener in (ipv4, ipv6):
                    listener.setblocking(False)
                    try:
                        listener.accept()[0].close()
                    except BlockingIOError:
                        continue
                    return True
                return False

            connected.port = port
            yield connected


@pytest.mark.parametrize("host", LOOPBACK_HOSTS + OTHER_PRIVATE_HOSTS)
@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_private_host_is_refused_before_any_connection(listeners, protocol, security, host):
    with pytest.raises(errors.HostNotAllowed) as info:
        open_server(protocol, host, listeners.port, security)
    assert info.value.params == {"host": host}
    assert info.value.definitive is True
    assert str(info.value) == (
        f"The server {host} is on a private or local network, which is not allowed for mail servers. "
        "Ask your administrator."
    )
    assert not listeners()


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_control_the_listeners_see_a_connection(listeners, host):
    # Without the guard, each of these hosts reaches the listeners.
    with pytest.raises(errors.ServerUnreachable):
        open_server("smtp", host, listeners.port, "ssl", allow_private=True, timeout=0.2)
    assert listeners()


@pytest.fixture
def fake_dns(monkeypatch):
    """Answer getaddrinfo for chosen names (``answers[name] = [ip, ...]``); count the questions."""
    real_getaddrinfo = socket.getaddrinfo
    answers, asked = {}, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real_getaddrinfo(host, port, *args, **kwargs)
        asked.append(host)
        if not answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, asked


@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_a_name_with_one_private_address_among_public_ones_is_refused(fake_dns, protocol, security):
    answers, asked = fake_dns
    answers["mail.example.test"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "10.0.0.7"]
    with pytest.raises(errors.HostNotAllowed) as info:
        open_server(protocol, "mail.example.test", 993, security)
    assert info.value.params == {"host": "mail.example.test"}
    assert asked == ["mail.example.test"]


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_pass_the_guard(address):
    assert connection.is_public(address)
    connection.check_addresses("mail.example.test", [address])


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "0.0.0.0", "::", "::7f00:1", *OTHER_PRIVATE_HOSTS])
def test_non_public_addresses_do_not(address):
    assert not connection.is_public(address)
    with pytest.raises(errors.HostNotAllowed):
        connection.check_addresses("mail.example.test", ["8.8.8.8", address])
    connection.check_addresses("mail.example.test", ["8.8.8.8", address], allow_private=True)


# ----------------------------------------------------------------------
# The connection goes to the address that was checked
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot():
    with Dovecot({LOGIN: PASSWORD}, folders={}) as server:
        yield server


@pytest.fixture(scope="module")
def smtp_server():
    with SMTPTestServer({LOGIN: PASSWORD}) as server:
        yield server


@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_the_name_is_resolved_once_and_the_checked_address_is_used(
    fake_dns, dovecot, smtp_server, protocol, security
):
    # A second lookup of the name would fail: the connection must use the first answer,
    # and the certificate is still checked against the name.
    answers, asked = fake_dns
    server = dovecot if protocol == "imap" else smtp_server
    port = server.ssl_port if security == "ssl" else server.starttls_port
    answers["mail.example.test"] = ["127.0.0.1"]
    opener, _ = OPENERS[protocol]
    client = opener(
        connection.Server("mail.example.test", port, security),
        LOGIN,
        PASSWORD,
        ca_file=tls.authority().ca_file,
        timeout=5,
        allow_private=True,
    )
    answers["mail.example.test"] = []
    try:
        sock = client.socket() if protocol == "imap" else client.sock
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.server_hostname == "mail.example.test"
        assert sock.getpeername()[:2] == ("127.0.0.1", port)
    finally:
        client.logout() if protocol == "imap" else client.quit()
    assert asked == ["mail.example.test"]


@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_the_same_name_is_refused_without_permission(fake_dns, dovecot, smtp_server, protocol, security):
    answers, _ = fake_dns
    server = dovecot if protocol == "imap" else smtp_server
    answers["mail.example.test"] = ["127.0.0.1"]
    with pytest.raises(errors.HostNotAllowed):
        open_server(protocol, "mail.example.test", server.ssl_port, security)
