import logging
from datetime import timedelta

from odoo import SUPERUSER_ID, api, fields, models

from .. import database, series
from ..mailbox_client import errors, oauth

_logger = logging.getLogger(__name__)

# An access token is refreshed when it has less than this left.
REFRESH_BEFORE = timedelta(minutes=5)
# A sign-in that no mailbox uses is forgotten after this long.
UNUSED_FOR = timedelta(minutes=30)
PROVIDERS = [("google", "Google"), ("microsoft", "Microsoft")]


class CatsMailSyncToken(models.Model):
    """A recruiter's sign-in with Microsoft or Google: what their mailbox logs in with.

    The refresh and access tokens are kept encrypted by ``cats_mail_sync.secret``
    in columns no ORM field reaches; only the sync and the set-up assistant read
    them. One sign-in per user and provider.
    """

    _name = "cats_mail_sync.token"
    _description = "Mailbox sign-in"

    user_id = fields.Many2one("res.users", required=True, ondelete="cascade", index=True)
    provider = fields.Selection(PROVIDERS, required=True)
    address = fields.Char("Signed in as", required=True)
    expires_at = fields.Datetime("Access token valid until")

    _one_per_provider = series.unique("UNIQUE(user_id, provider)", "A user signs in once per provider.")

    def init(self):
        super().init()
        database.make(self.env.cr, self._table)

    @api.model
    def _find(self, user, provider):
        return self.sudo().search([("user_id", "=", user.id), ("provider", "=", provider)], limit=1)

    @api.model
    def _keep(self, user, provider, tokens):
        """Keep the tokens of a sign-in; another sign-in of the same provider is replaced."""
        old = self._find(user, provider)
        if old and old.address != tokens.address:
            old._forget()
            old = self.browse()
        values = {"user_id": user.id, "provider": provider, "address": tokens.address}
        token = old or self.sudo().create(values)
        token._store(tokens)
        return token

    def _store(self, tokens):
        """Keep a new access token, and the refresh token when one came (rotation), together."""
        store = self.env["cats_mail_sync.secret"]
        store._put(self, "cats_access_token", tokens.access_token)
        if tokens.refresh_token:
            store._put(self, "cats_refresh_token", tokens.refresh_token)
        self.write({"expires_at": fields.Datetime.now() + timedelta(seconds=tokens.expires_in)})

    def _access_token(self, refused=None):
        """A valid access token, refreshed first when it expires within five minutes, or when
        it is ``refused`` (a mail server refused it before its time: revoked, say).

        Raises :class:`errors.SignInExpired` when the provider refused the refresh
        token, :class:`errors.ProviderUnreachable` when it could not be asked.
        """
        self.ensure_one()
        store = self.env["cats_mail_sync.secret"]
        if not refused and self.expires_at and self.expires_at - REFRESH_BEFORE > fields.Datetime.now():
            cached = store._get(self, "cats_access_token")
            if cached:
                return cached
        # Refreshed and kept in a transaction of its own, committed at once: a rotated
        # refresh token must outlive whatever the caller's transaction does next. The
        # row lock makes a second refresh at the same moment wait, then use this one.
        self.env.flush_all()
        with self.env.registry.cursor() as cr:
            token = self.with_env(api.Environment(cr, SUPERUSER_ID, {}))
            cr.execute("SELECT id FROM cats_mail_sync_token WHERE id = %s FOR UPDATE", [token.id])
            if not cr.fetchone():
                raise errors.SignInExpired(provider=dict(PROVIDERS)[self.provider])
            stored = store.with_env(token.env)._get(token, "cats_access_token")
            if (
                stored != refused
                and token.expires_at
                and token.expires_at - REFRESH_BEFORE > fields.Datetime.now()
            ):
                access = stored  # still valid, or already refreshed by another run after a refusal
            else:
                refresh = store.with_env(token.env)._get(token, "cats_refresh_token")
                if not refresh:
                    raise errors.SignInExpired(provider=dict(PROVIDERS)[self.provider])
                sign_in = token.env["cats_mail_sync.sign_in"]
                tokens = oauth.refresh(
                    sign_in._provider(token.provider),
                    sign_in._client(token.provider),
                    refresh,
                    ca_file=sign_in._ca_file(),
                )
                token._store(tokens)
                access = tokens.access_token
        self.invalidate_recordset()
        return access

    def _forget(self):
        """Revoke the sign-ins where the provider can, and forget their tokens."""
        store = self.env["cats_mail_sync.secret"]
        sign_in = self.env["cats_mail_sync.sign_in"]
        for token in self.sudo():
            try:
                refresh = store._get(token, "cats_refresh_token")
                if refresh:
                    oauth.revoke(
                        sign_in._provider(token.provider),
                        sign_in._client(token.provider),
                        refresh,
                        ca_file=sign_in._ca_file(),
                    )
            except errors.MailboxError as error:
                # Unreadable, or no application configured: forgotten all the same.
                _logger.info("Sign-in of user %s not revoked: %s", token.user_id.id, error)
        self.sudo().unlink()

    @api.model
    def _forget_unused(self):
        """Sign-ins that no mailbox took up within half an hour are forgotten."""
        since = fields.Datetime.now() - UNUSED_FOR
        tokens = self.sudo().search([("write_date", "<", since)])
        tokens.filtered(lambda t: t.user_id.mailbox_oauth_provider != t.provider)._forget()
