"""The one place where a connection to a mail server is made.

Only encrypted connections exist here: implicit TLS (``ssl``) or a STARTTLS
upgrade that must succeed before any credential is sent (``starttls``).
Certificates and host names are always verified, against the system trust
store plus, optionally, one extra CA bundle an administrator configured.
"""

import errno
import smtplib
import socket
import ssl
from dataclasses import dataclass

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from . import errors

SECURITY_MODES = ("ssl", "starttls")
CONNECT_TIMEOUT = 15
READ_TIMEOUT = 60


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


def tls_context(ca_file=None):
    """A verifying TLS context: system trust store, plus ``ca_file`` if given."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def explain(exc, server):
    """Turn a low-level network or TLS exception into a :class:`MailboxError`."""
    where = {"host": server.host, "port": server.port}
    if isinstance(exc, errors.MailboxError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return errors.CertificateNotTrusted(
            host=server.host, reason=exc.verify_message or "verification failed"
        )
    if isinstance(exc, socket.gaierror):
        return errors.ServerNotFound(host=server.host)
    if isinstance(exc, ConnectionRefusedError):
        return errors.ConnectionRefused(**where)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return errors.ConnectionTimedOut(**where)
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return errors.ServerUnreachable(reason="no route to host", **where)
    reason = exc.__class__.__name__
    if isinstance(exc, ssl.SSLError):
        reason = f"TLS error {exc.reason or exc.__class__.__name__}"
    return errors.ServerUnreachable(reason=reason, **where)


def open_imap(server, login, password, *, ca_file=None, timeout=None):
    """Connect, secure and log in to an IMAP server; return an IMAPClient.

    Raises :class:`errors.MailboxError` subclasses only.
    """
    context = tls_context(ca_file)
    timeout = timeout or imapclient.SocketTimeout(CONNECT_TIMEOUT, READ_TIMEOUT)
    try:
        client = imapclient.IMAPClient(
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
        client.login(login, password)
    except LoginError:
        _close(client)
        raise errors.AuthenticationFailed() from None
    except errors.MailboxError:
        _close(client)
        raise
    except (OSError, IMAPClientError) as exc:
        _close(client)
        raise explain(exc, server) from None
    return client


def open_smtp(server, login, password, *, ca_file=None, timeout=CONNECT_TIMEOUT):
    """Connect, secure and authenticate to an SMTP submission server.

    Returns the logged-in :class:`smtplib.SMTP`; raises :class:`errors.MailboxError`.
    """

    def failure(exc):
        # smtplib turns any OSError while reading a reply (a read timeout above all)
        # into SMTPServerDisconnected: explain the original error instead.
        if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, OSError):
            exc = exc.__context__
        return explain(exc, server)

    context = tls_context(ca_file)
    try:
        if server.security == "ssl":
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise failure(exc) from None
    try:
        if server.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise errors.SecureConnectionUnavailable(host=server.host, port=server.port)
            smtp.starttls(context=context)
        smtp.login(login, password)
    except smtplib.SMTPAuthenticationError:
        _close(smtp)
        raise errors.AuthenticationFailed() from None
    except errors.MailboxError:
        _close(smtp)
        raise
    except (OSError, smtplib.SMTPException) as exc:
        _close(smtp)
        raise failure(exc) from None
    return smtp


def _close(connection):
    try:
        if isinstance(connection, smtplib.SMTP):
            connection.close()
        else:
            connection.shutdown()
    except (OSError, IMAPClientError, smtplib.SMTPException):
        pass
