import dataclasses
import secrets
import time

from werkzeug.urls import url_join

from odoo import api, models
from odoo.tools.misc import hmac

from ..mailbox_client import connection, errors, oauth
from .res_users import digest

# Where the provider sends the browser back (registered with the provider, shown in Settings).
CALLBACK = "/cats_mail_sync/sign_in"
# A sign-in must come back within this many seconds.
STATE_SECONDS = 600
# Settings of Odoo's google_gmail and microsoft_outlook modules: one place for the application.
CLIENT_PARAMS = {"google": "google_gmail", "microsoft": "microsoft_outlook"}
# The assistant's providers that sign in with one of them.
SIGN_IN_PROVIDERS = {"gmail": "google", "outlook": "microsoft", "office365": "microsoft"}


class StateRefused(Exception):
    """A sign-in that came back with a state that is not this user's valid, unused one."""


class CatsMailSyncSignIn(models.AbstractModel):
    """Sign in to a mailbox with Microsoft or Google, from the set-up assistant.

    The authorization code flow with PKCE (S256). The ``state`` that goes to the
    provider and comes back binds the sign-in to its user and assistant: signed
    (HMAC with the database secret), single use (the assistant keeps a digest of
    its nonce until it comes back) and valid ten minutes. The PKCE verifier is
    derived from the state with another key, so it never leaves the server.
    """

    _name = "cats_mail_sync.sign_in"
    _description = "Mailbox sign-in with Microsoft or Google"

    @api.model
    def _provider(self, code):
        """The identity platform ``code``: Odoo's endpoint settings, or the public ones.

        A national cloud (or a test) puts them elsewhere: ``microsoft_outlook.endpoint``
        (Odoo's own), ``cats_mail_sync.google_endpoint``, and the mail servers
        ``cats_mail_sync.CODE_imap_server`` / ``_smtp_server`` as "host:port".
        """
        params = self.env["ir.config_parameter"].sudo()
        if code == "microsoft":
            provider = oauth.microsoft(
                params.get_param("microsoft_outlook.endpoint") or oauth.MICROSOFT_ENDPOINT,
                (params.get_param("cats_mail_sync.microsoft_tenant") or "").strip() or None,
            )
        else:
            provider = oauth.google(params.get_param("cats_mail_sync.google_endpoint") or None)
        servers = {}
        for kind in ("imap", "smtp"):
            where = params.get_param(f"cats_mail_sync.{code}_{kind}_server")
            if where:
                host, _colon, port = where.strip().rpartition(":")
                preset = getattr(provider, kind)
                servers[kind] = connection.Server(host, int(port), preset.security)
        return dataclasses.replace(provider, **servers)

    @api.model
    def _client(self, code):
        """This Odoo's application at provider ``code``, as entered in Settings."""
        params = self.env["ir.config_parameter"].sudo()
        prefix = CLIENT_PARAMS[code]
        client_id = params.get_param(f"{prefix}_client_id")
        client_secret = params.get_param(f"{prefix}_client_secret")
        if not (client_id and client_secret):
            raise errors.SignInNotSetUp(provider=self._provider(code).label)
        return oauth.Client(client_id, client_secret, self._redirect_uri())

    @api.model
    def _is_set_up(self, code):
        """Whether an administrator entered this Odoo's application at provider ``code``."""
        try:
            self._client(code)
        except errors.SignInNotSetUp:
            return False
        return True

    @api.model
    def _redirect_uri(self):
        return url_join(self.env["ir.config_parameter"].sudo().get_param("web.base.url"), CALLBACK)

    @api.model
    def _ca_file(self):
        return self.env["cats_mail_sync.connector"]._options()["ca_file"]

    @api.model
    def _start(self, setup, code):
        """The provider's sign-in page for ``setup`` (an assistant of the current user)."""
        nonce = secrets.token_urlsafe(16)
        payload = f"{setup.id}.{self.env.uid}.{int(time.time())}.{nonce}"
        state = f"{payload}.{self._sign('state', payload)}"
        setup.oauth_nonce_digest = digest(nonce)
        return oauth.authorize_url(
            self._provider(code), self._client(code), state, self._verifier(state), login_hint=setup.email
        )

    @api.model
    def _check(self, state):
        """The current user's assistant that ``state`` was made for; it cannot be used again.

        Raises :class:`StateRefused` for a state that was tampered with, used, expired,
        or made for another user or assistant.
        """
        try:
            payload, signature = state.rsplit(".", 1)
            setup_id, uid, issued, nonce = payload.split(".", 3)
            setup_id, uid, issued = int(setup_id), int(uid), int(issued)
        except (AttributeError, ValueError):
            raise StateRefused() from None
        if not secrets.compare_digest(signature, self._sign("state", payload)):
            raise StateRefused()
        if uid != self.env.uid or not 0 <= time.time() - issued <= STATE_SECONDS:
            raise StateRefused()
        setup = self.env["cats_mail_sync.setup"].browse(setup_id).exists()
        if not setup or setup.create_uid != self.env.user or not setup.oauth_nonce_digest:
            raise StateRefused()
        if not secrets.compare_digest(setup.oauth_nonce_digest, digest(nonce)):
            raise StateRefused()
        setup.oauth_nonce_digest = False  # single use
        return setup

    @api.model
    def _finish(self, setup, code, state, authorization_code):
        """Exchange the code of a checked ``state``; the tokens, with the address signed in.

        Raises :class:`errors.MailboxError`.
        """
        tokens = oauth.exchange_code(
            self._provider(code),
            self._client(code),
            authorization_code,
            self._verifier(state),
            ca_file=self._ca_file(),
        )
        if not tokens.address:
            raise errors.SignInRefused(provider=self._provider(code).label, reason="no mail address")
        if not tokens.refresh_token:
            raise errors.SignInRefused(provider=self._provider(code).label, reason="no refresh token")
        return tokens

    @api.model
    def _verifier(self, state):
        # 64 hexadecimal digits: a valid PKCE verifier (43 to 128 unreserved characters).
        return self._sign("pkce", state)

    @api.model
    def _sign(self, purpose, message):
        return hmac(self.env(su=True), f"cats_mail_sync.sign_in.{purpose}", message)
