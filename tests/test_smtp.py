"""open_smtp against a real SMTP server (harness.smtp_server), no Odoo."""

import smtplib
import socket
import ssl
import threading
import traceback

import pytest

from harness import tls
from harness.smtp_server import AuthAttempt, SMTPTestServer
from mailbox_client import connection, errors

LOGIN = "anna.recruiter@example.test"
PASSWORD = "Tr0ub4dor&3-horse"
WRONG_PASSWORD = "wr0ng-Pa55word-7731"
MODES = ("starttls", "ssl")


@pytest.fixture
def smtp_server():
    with SMTPTestServer({LOGIN: PASSWORD}) as server:
        yield server


def port_of(server, security):
    return server.starttls_port if security == "starttls" else server.ssl_port


def ca_file():
    return tls.authority().ca_file


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("security", MODES)
def test_login_and_send_arrives_as_user(smtp_server, security):
    server = connection.Server("localhost", port_of(smtp_server, security), security)
    smtp = connection.open_smtp(server, LOGIN, PASSWORD, ca_file=ca_file(), timeout=5, allow_private=True)
    try:
        assert isinstance(smtp.sock, ssl.SSLSocket)
        refused = smtp.sendmail(
            LOGIN,
            ["candidate@example.org", "boss@example.test"],
            b"From: " + LOGIN.encode() + b"\r\nSubject: Interview on Monday\r\n\r\nHello!\r\n",
        )
    finally:
        smtp.quit()
    assert refused == {}
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message.login == LOGIN
    assert message.listener == security
    assert message.mail_from == LOGIN
    assert message.rcpt_tos == ("candidate@example.org", "boss@example.test")
    assert b"Subject: Interview on Monday\r\n" in message.data
    assert smtp_server.auth_attempts == [AuthAttempt(security, "PLAIN")]


@pytest.mark.parametrize("security", MODES)
@pytest.mark.parametrize("login", [LOGIN, "nobody@example.test"])
def test_wrong_credentials_fail_without_leaking_password(smtp_server, security, login):
    server = connection.Server("localhost", port_of(smtp_server, security), security)
    with pytest.raises(errors.AuthenticationFailed) as info:
        connection.open_smtp(server, login, WRONG_PASSWORD, ca_file=ca_file(), timeout=5, allow_private=True)
    exc = info.value
    assert exc.definitive is True
    assert str(exc).startswith("The mail server refused the login name or password.")
    shown = str(exc) + repr(exc) + "".join(traceback.format_exception(exc)) + repr(exc.params)
    assert WRONG_PASSWORD not in shown
    assert PASSWORD not in shown
    # The password really was checked by the server (PLAIN, then LOGIN), and nothing was sent.
    assert [a.mechanism for a in smtp_server.auth_attempts] == ["PLAIN", "LOGIN"]
    assert smtp_server.messages == []


@pytest.mark.parametrize("security", MODES)
def test_untrusted_ca_with_system_store_only(smtp_server, security):
    server = connection.Server("localhost", port_of(smtp_server, security), security)
    with pytest.raises(errors.CertificateNotTrusted) as info:
        connection.open_smtp(server, LOGIN, PASSWORD, timeout=5, allow_private=True)
    assert info.value.params == {"host": "localhost", "reason": "unable to get local issuer certificate"}
    assert PASSWORD not in str(info.value)
    assert smtp_server.auth_attempts == []


@pytest.mark.parametrize("security", MODES)
def test_certificate_of_another_ca(security):
    stranger = tls.TestAuthority()
    with SMTPTestServer({LOGIN: PASSWORD}, cert_file=stranger.cert_file, key_file=stranger.key_file) as mail:
        server = connection.Server("localhost", port_of(mail, security), security)
        with pytest.raises(errors.CertificateNotTrusted) as info:
            connection.open_smtp(server, LOGIN, PASSWORD, ca_file=ca_file(), timeout=5, allow_private=True)
        assert mail.auth_attempts == []
    assert info.value.params["reason"] == "unable to get local issuer certificate"


@pytest.mark.parametrize("security", MODES)
def test_hostname_mismatch(security):
    cert_file, key_file = tls.authority().leaf("other.example.net")
    with SMTPTestServer({LOGIN: PASSWORD}, cert_file=cert_file, key_file=key_file) as mail:
        server = connection.Server("localhost", port_of(mail, security), security)
        with pytest.raises(errors.CertificateNotTrusted) as info:
            connection.open_smtp(server, LOGIN, PASSWORD, ca_file=ca_file(), timeout=5, allow_private=True)
        assert mail.auth_attempts == []
    assert info.value.params["host"] == "localhost"
    assert "Hostname mismatch" in str(info.value)
    assert "'localhost'" in info.value.params["reason"]


def test_server_without_starttls_gets_no_password():
    with SMTPTestServer({LOGIN: PASSWORD}, plaintext=True) as mail:
        server = connection.Server("127.0.0.1", mail.plain_port, "starttls")
        with pytest.raises(errors.SecureConnectionUnavailable) as info:
            connection.open_smtp(server, LOGIN, PASSWORD, ca_file=ca_file(), timeout=5, allow_private=True)
        assert info.value.params == {"host": "127.0.0.1", "port": mail.plain_port}
        assert mail.auth_attempts == []
        # Control: this server would have taken the password in clear text, and it records AUTH.
        with smtplib.SMTP("127.0.0.1", mail.plain_port, timeout=5) as careless:
            careless.login(LOGIN, PASSWORD)
        assert mail.auth_attempts == [AuthAttempt("plain", "PLAIN")]


def test_implicit_tls_against_starttls_port(smtp_server):
    # The plain-text greeting is not a TLS record: told like any port without a mail server.
    server = connection.Server("localhost", smtp_server.starttls_port, "ssl")
    with pytest.raises(errors.ServerUnreachable) as info:
        connection.open_smtp(server, LOGIN, PASSWORD, ca_file=ca_file(), timeout=5, allow_private=True)
    assert info.value.params == {"host": "localhost", "port": smtp_server.starttls_port}
    assert smtp_server.auth_attempts == []


@pytest.fixture
def stalling_server():
    """Start a one-connection server that speaks a little, then stalls; yields its port."""
    done = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve(security):
        conn, _ = listener.accept()
        with conn:
            if security == "ssl":  # TLS handshake done, then no greeting
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(tls.authority().cert_file, tls.authority().key_file)
                conn = context.wrap_socket(conn, server_side=True)
            else:  # greeting sent, then no answer to EHLO
                conn.sendall(b"220 mail.example.test ESMTP\r\n")
            done.wait(10)

    def start(security):
        threading.Thread(target=serve, args=(security,), daemon=True).start()
        return listener.getsockname()[1]

    yield start
    done.set()
    listener.close()


@pytest.mark.parametrize("security", MODES)
def test_server_stalling_after_connect_times_out(stalling_server, security):
    port = stalling_server(security)
    server = connection.Server("localhost", port, security)
    with pytest.raises(errors.ServerUnreachable) as info:
        connection.open_smtp(server, LOGIN, PASSWORD, ca_file=ca_file(), timeout=0.5, allow_private=True)
    assert info.value.params == {"host": "localhost", "port": port}


@pytest.mark.parametrize("security", ["plain", "none", "", "SSL"])
def test_unencrypted_security_is_invalid(security):
    with pytest.raises(errors.InvalidSettings) as info:
        connection.Server("mail.example.test", 25, security)
    assert info.value.definitive is True
    assert info.value.params == {"reason": "only SSL/TLS or STARTTLS connections are allowed"}
