"""What a mailbox logs in with, and whether it may go to a given server.

A saved password goes only to the places it was saved for (IMAP and SMTP server,
port and login, bound inside its ciphertext by ``cats_mail_sync.secret``); a
sign-in's access token only to its provider's own IMAP and SMTP servers, as the
address signed in. The connector asks here, with the exact server and login, at
the moment it connects: whatever changed in between (a form, an RPC ``write``, an
SQL update), nothing else receives a secret.
"""

from odoo import api, models

from ..mailbox_client import errors
from .cats_mail_sync_secret import place
from .cats_mail_sync_token import PROVIDERS as SIGN_IN_PROVIDERS

PASSWORD_COLUMN = "cats_mailbox_password"


class CatsMailSyncCredentials(models.AbstractModel):
    """The secrets a mailbox logs in with, each only for the servers it was given for."""

    _name = "cats_mail_sync.credentials"
    _description = "Mailbox credentials"

    # ------------------------------------------------------------------
    # Where a mailbox goes
    # ------------------------------------------------------------------

    @api.model
    def _places(self, user):
        """``{"imap": place, "smtp": place or None}`` of ``user``'s saved settings."""
        user = user.sudo()
        return {
            "imap": place(user.mailbox_imap_host, user.mailbox_imap_port, user.mailbox_login),
            "smtp": place(user.mailbox_smtp_host, user.mailbox_smtp_port, user.mailbox_login),
        }

    @api.model
    def _sign_in_places(self, token):
        """The places a sign-in's access token may go to: its provider's IMAP and SMTP
        servers (Settings may move them, never a user), as the address signed in."""
        provider = self.env["cats_mail_sync.sign_in"]._provider(token.provider)
        return {
            place(server.host, server.port, token.address)
            for server in (provider.imap, provider.smtp)
            if server
        }

    # ------------------------------------------------------------------
    # What a mailbox logs in with
    # ------------------------------------------------------------------

    @api.model
    def _for(self, user, server, login, refused=None):
        """How ``user``'s mailbox logs in to ``server`` (a ``connection.Server``) as ``login``:
        ``{"password": ...}`` or ``{"access_token": ...}``.

        Only for the saved settings' own servers and login, and only those the secret
        was given for: raises :class:`errors.SecretNotForServer` (or
        :class:`errors.SignInNotForServer`) otherwise, before anything is sent.
        """
        user = user.sudo()
        where = place(server.host, server.port, login)
        if where not in self._places(user).values():
            raise self._not_for_server(user)
        if not user.mailbox_oauth_provider:
            password = self._password(user, where)
            if password is None:
                raise errors.SecretNotForServer()  # none saved (any more): typed again, it logs in
            return {"password": password}
        token = self._sign_in(user)
        if not token:
            raise errors.SignInExpired(provider=dict(SIGN_IN_PROVIDERS)[user.mailbox_oauth_provider])
        return {"access_token": self._access_token(token, server, login, refused)}

    @api.model
    def _password(self, user, where=None):
        """``user``'s saved password; for place ``where`` only if it was saved for it.

        Raises :class:`errors.SecretNotForServer`, :class:`errors.SecretUnreadable`.
        """
        return self.env["cats_mail_sync.secret"]._get(user.sudo(), PASSWORD_COLUMN, where)

    @api.model
    def _access_token(self, token, server, login, refused=None):
        """A valid access token of sign-in ``token`` (another than ``refused``), for its
        provider's own ``server`` and its address as ``login`` only
        (:class:`errors.SignInNotForServer` otherwise)."""
        if place(server.host, server.port, login) not in self._sign_in_places(token):
            raise errors.SignInNotForServer(provider=dict(SIGN_IN_PROVIDERS)[token.provider])
        return token._access_token(refused)

    @api.model
    def _sign_in(self, user):
        """The sign-in (``cats_mail_sync.token``) ``user``'s mailbox logs in with, if it signs in."""
        user = user.sudo()
        if not user.mailbox_oauth_provider:
            return self.env["cats_mail_sync.token"]
        return self.env["cats_mail_sync.token"]._find(user, user.mailbox_oauth_provider)

    @api.model
    def _fits(self, user, kind):
        """Whether ``user``'s secret may go to the saved ``kind`` ("imap", "smtp") server
        (without asking a provider for a token)."""
        user = user.sudo()
        where = self._places(user)[kind]
        if not where:
            return False
        if user.mailbox_oauth_provider:
            token = self._sign_in(user)
            return bool(token) and where in self._sign_in_places(token)
        try:
            return where in self.env["cats_mail_sync.secret"]._places(user, PASSWORD_COLUMN)
        except errors.SecretUnreadable:
            return False

    @api.model
    def _not_for_server(self, user):
        if user.mailbox_oauth_provider:
            return errors.SignInNotForServer(provider=dict(SIGN_IN_PROVIDERS)[user.mailbox_oauth_provider])
        return errors.SecretNotForServer()

    # ------------------------------------------------------------------
    # Keeping them
    # ------------------------------------------------------------------

    @api.model
    def _save_password(self, user, password):
        """Keep ``password`` for ``user``'s saved IMAP and SMTP servers and login (only those)."""
        places = self._places(user).values()
        self.env["cats_mail_sync.secret"]._put(user.sudo(), PASSWORD_COLUMN, password, places)

    @api.model
    def _forget_for_other_places(self, users):
        """After settings changed: a saved password or sign-in that was not given for the
        servers and login now saved is forgotten (a password saved in the same write was).

        Returns ``{"password": users, "sign_in": users}``: the mailboxes that lost their
        password or sign-in that way (a mailbox now signing in keeps no password: that
        is no loss).
        """
        store = self.env["cats_mail_sync.secret"]
        lost = {"password": self.env["res.users"], "sign_in": self.env["res.users"]}
        for user in users.sudo():
            places = {where for where in self._places(user).values() if where}
            if store._has(user, PASSWORD_COLUMN):
                try:
                    kept_for = store._places(user, PASSWORD_COLUMN)
                except errors.SecretUnreadable:
                    kept_for = None  # unusable anyway: its owner is asked to type it again
                if kept_for is not None and not places <= kept_for:
                    store._put(user, PASSWORD_COLUMN, False)
                    if not user.mailbox_oauth_provider:
                        lost["password"] |= user
            token = self._sign_in(user)
            if token and not places <= self._sign_in_places(token):
                token._forget()
                user._mailbox_sign_out()
                lost["sign_in"] |= user
        return lost
