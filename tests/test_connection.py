"""Network failures explained the same way for IMAP and SMTP, in either security mode."""

import socket

import imapclient
import pytest

from harness.dovecot import free_port
from mailbox_client import connection, errors

LOGIN, PASSWORD = "anna.recruiter@example.test", "Tr0ub4dor&3-horse"
# Each protocol's opener and a short timeout in the form it takes.
OPENERS = {
    "imap": (connection.open_imap, imapclient.SocketTimeout(0.5, 0.5)),
    "smtp": (connection.open_smtp, 0.5),
}
CASES = [(protocol, security) for protocol in OPENERS for security in connection.SECURITY_MODES]


def open_server(protocol, host, port, security):
    opener, timeout = OPENERS[protocol]
    return opener(connection.Server(host, port, security), LOGIN, PASSWORD, timeout=timeout)


@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_refused_port(protocol, security):
    port = free_port()
    with pytest.raises(errors.ConnectionRefused) as info:
        open_server(protocol, "127.0.0.1", port, security)
    assert info.value.params == {"host": "127.0.0.1", "port": port}
    assert str(info.value) == f"The server 127.0.0.1 refused the connection on port {port}. Check the port."


@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_unknown_host(protocol, security):
    with pytest.raises(errors.ServerNotFound) as info:
        open_server(protocol, "nonexistent.invalid", 993, security)
    assert info.value.params == {"host": "nonexistent.invalid"}
    assert "nonexistent.invalid does not exist" in str(info.value)


@pytest.mark.parametrize(("protocol", "security"), CASES)
def test_silent_server_times_out(protocol, security):
    # The kernel completes the TCP handshake on the listen backlog; nobody ever speaks.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(errors.ConnectionTimedOut) as info:
            open_server(protocol, "127.0.0.1", port, security)
    assert info.value.params == {"host": "127.0.0.1", "port": port}
