"""A real SMTP submission server for tests (aiosmtpd), on 127.0.0.1, free ports.

    with SMTPTestServer({"anna@example.test": "s3cret"}) as server:
        ...  # connect to server.starttls_port or server.ssl_port
        assert server.messages[0].login == "anna@example.test"

Two listeners by default: STARTTLS (``starttls_port``; STARTTLS required before
any other command, AUTH only over TLS) and implicit TLS (``ssl_port``, like 465).
Both offer AUTH PLAIN and LOGIN against ``users`` and accept mail only after a
successful AUTH (the plaintext listener too). The certificate is the run's test CA leaf
(:func:`harness.tls.authority`) unless ``cert_file``/``key_file`` are given.

``plaintext=True`` gives one unencrypted listener instead (``plain_port``), with
no STARTTLS, that offers and accepts AUTH in clear text: the server a client
must refuse to send a password to. Every AUTH command it gets is recorded.

``oauth=`` adds AUTH XOAUTH2 (offered only then): an
:class:`harness.oauth_server.OAuthServer` (its tokens are checked with its
``introspect``) or a callable ``token -> email or None``. The token must be
active and its email the ``user=`` of the XOAUTH2 string. A refused token gets
what Gmail answers: a 334 challenge with a JSON error, then, after the client's
empty reply, 535.
"""

import base64
import binascii
import json
import ssl
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, syntax

from . import tls

HOST = "127.0.0.1"
XOAUTH2_ERROR = json.dumps({"status": "401", "schemes": "Bearer", "scope": "https://mail.example.test/"})


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted mail: envelope, raw bytes, the AUTH login and the listener."""

    mail_from: str
    rcpt_tos: tuple
    data: bytes
    login: str  # AUTH login; MAIL is refused before AUTH, so never empty
    listener: str


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH command the server handled, whatever its outcome (not recorded: an AUTH
    the STARTTLS listener refuses with 530 because it came before STARTTLS)."""

    listener: str
    mechanism: str


class _SMTP(SMTP):
    """aiosmtpd's SMTP, recording every AUTH command it receives."""

    def __init__(self, handler, listener, **kwargs):
        super().__init__(handler, **kwargs)
        self._listener = listener

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg):
        mechanism = (arg or "").split(" ")[0].upper()
        self.event_handler.server.auth_attempts.append(AuthAttempt(self._listener, mechanism))
        await super().smtp_AUTH(arg)


class _Controller(Controller):
    """A Controller on a free port (port 0) that builds :class:`_SMTP`."""

    def __init__(self, handler, listener, **kwargs):
        super().__init__(handler, hostname=HOST, port=0, **kwargs)
        self.listener = listener

    def factory(self):
        return _SMTP(self.handler, self.listener, **self.SMTP_kwargs)

    def _trigger_server(self):
        # Learn the port the kernel chose before aiosmtpd connects to "self.port".
        self.port = self.server.sockets[0].getsockname()[1]
        return super()._trigger_server()


class _Handler:
    def __init__(self, server, listener):
        self.server = server
        self.listener = listener

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        # Like aiosmtpd's auth_required, which warns when auth_require_tls is off (ssl listener).
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        self.server.messages.append(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content or envelope.content,
                login=session.auth_data.login.decode() if session.authenticated else None,
                listener=self.listener,
            )
        )
        return "250 2.0.0 Message accepted"

    async def auth_XOAUTH2(self, smtp, args):
        """SASL XOAUTH2: "user=<login>\\1auth=Bearer <token>\\1\\1", inline (base64) or after a 334."""
        if len(args) > 1:
            try:
                data = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await smtp.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            data = await smtp.challenge_auth("")
            if data is MISSING:
                return AuthResult(success=False, handled=True)
        parts = data.decode("utf-8", "replace").split("\x01")
        fields = dict(part.split("=", 1) for part in parts if "=" in part)
        login = fields.get("user", "")
        scheme, _, token = fields.get("auth", "").partition(" ")
        if scheme.lower() == "bearer" and token and self.server.token_owner(token) == login:
            return AuthResult(success=True, auth_data=LoginPassword(login.encode(), b""))
        # Like Gmail: the error as a challenge, then 535 once the client answered it.
        if await smtp.challenge_auth(XOAUTH2_ERROR) is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False)


class SMTPTestServer:
    """Context manager running the listeners in background threads."""

    def __init__(
        self,
        users=None,
        *,
        cert_file=None,
        key_file=None,
        plaintext=False,
        hostname="mail.example.test",
        oauth=None,
    ):
        self.users = dict(users or {})
        self.oauth = oauth
        self.messages = []
        self.auth_attempts = []
        self.starttls_port = self.ssl_port = self.plain_port = None
        self._hostname = hostname
        self._plaintext = plaintext
        if not plaintext:
            authority = tls.authority()
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(cert_file or authority.cert_file, key_file or authority.key_file)
        self._controllers = []

    def _authenticate(self, smtp, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = login in self.users and self.users[login] == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def token_owner(self, token):
        """The email of an active access token, or None (``oauth``: a server or a callable)."""
        if self.oauth is None:
            return None
        if callable(self.oauth):
            return self.oauth(token)
        answer = self.oauth.introspect(token)
        return answer.get("email") if answer.get("active") else None

    def _start(self, listener, **smtp_parameters):
        if self.oauth is None:
            smtp_parameters["auth_exclude_mechanism"] = ["XOAUTH2"]
        controller = _Controller(
            _Handler(self, listener),
            listener,
            server_hostname=self._hostname,
            authenticator=self._authenticate,
            **smtp_parameters,
        )
        controller.start()
        self._controllers.append(controller)
        return controller.port

    def __enter__(self):
        try:
            if self._plaintext:
                self.plain_port = self._start("plain", auth_require_tls=False)
            else:
                self.starttls_port = self._start(
                    "starttls",
                    tls_context=self._context,
                    require_starttls=True,
                    auth_require_tls=True,
                )
                # aiosmtpd only counts a STARTTLS upgrade as "TLS" for auth_require_tls;
                # on this listener the whole connection is TLS from the first byte.
                self.ssl_port = self._start("ssl", ssl_context=self._context, auth_require_tls=False)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        while self._controllers:
            self._controllers.pop().stop()
