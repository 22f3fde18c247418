import logging

import imapclient

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..mailbox_client import connection, errors

_logger = logging.getLogger(__name__)

# How many connection tests and detections one user may start per hour.
DEFAULT_TRIES_PER_HOUR = 20


def allowed_private_hosts(value):
    """``cats_mail_sync.allow_private_hosts``: True (any host), or the host names allowed
    (commas or lines), or False."""
    value = (value or "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    names = value.replace(",", "\n").splitlines()
    return frozenset(name.strip().lower().rstrip(".") for name in names) - {""}


class CatsMailSyncConnector(models.AbstractModel):
    """Connections to recruiters' mail servers, under this database's rules.

    Which CA bundles are trusted, whether servers on private networks may be
    reached (an administrator's choice, off by default), and how often a user
    may try settings out. :mod:`mailbox_client.connection` makes the connection.
    """

    _name = "cats_mail_sync.connector"
    _description = "Mailbox connections"

    @api.model
    def _options(self):
        """Keyword arguments of every connection and detection."""
        params = self.env["ir.config_parameter"].sudo()
        return {
            "ca_file": params.get_param("cats_mail_sync.ca_file") or None,
            "allow_private": allowed_private_hosts(params.get_param("cats_mail_sync.allow_private_hosts")),
        }

    @api.model
    def _imap(self, server, login, password=None, *, access_token=None):
        """A logged-in IMAP connection; raises :class:`errors.MailboxError`.

        Every wait is bounded: ``cats_mail_sync.read_timeout`` seconds (60) for an answer.
        """
        read = self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.read_timeout")
        timeout = imapclient.SocketTimeout(connection.CONNECT_TIMEOUT, float(read or connection.READ_TIMEOUT))
        return connection.open_imap(
            server, login, password, access_token=access_token, timeout=timeout, **self._options()
        )

    @api.model
    def _smtp(self, server, login, password=None, *, access_token=None):
        """A logged-in SMTP connection; raises :class:`errors.MailboxError`."""
        return connection.open_smtp(server, login, password, access_token=access_token, **self._options())

    @api.model
    def _user_imap(self, user):
        """``user``'s mailbox, logged in; its secret only ever goes to the server and login it
        was saved for (see ``cats_mail_sync.credentials``)."""
        server = connection.Server(user.mailbox_imap_host, user.mailbox_imap_port, user.mailbox_imap_security)
        return self._as_user(user, server, self._imap)

    @api.model
    def _user_smtp(self, user):
        """``user``'s SMTP server, logged in, under the same rule as :meth:`_user_imap`."""
        server = connection.Server(user.mailbox_smtp_host, user.mailbox_smtp_port, user.mailbox_smtp_security)
        return self._as_user(user, server, self._smtp)

    @api.model
    def _as_user(self, user, server, connect):
        """``connect(server, login, **credentials)`` as ``user``'s mailbox.

        An access token the server refuses is refreshed once and tried again: a provider may
        end one before its time. Only a refused refresh means signing in again.
        """
        credentials = self.env["cats_mail_sync.credentials"]
        login = user.mailbox_login
        given = credentials._for(user, server, login)
        try:
            return connect(server, login, **given)
        except errors.TokenRefused:
            if "access_token" not in given:
                raise
            _logger.info("Mailbox of user %s: the access token was refused; refreshed once", user.id)
        return connect(server, login, **credentials._for(user, server, login, refused=given["access_token"]))

    @api.model
    def _count_try(self):
        """Count a connection test or detection of the current user; refuse past the hourly limit."""
        limit = int(
            self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.tries_per_hour")
            or DEFAULT_TRIES_PER_HOUR
        )
        tries = self.env["cats_mail_sync.try"].sudo()
        since = fields.Datetime.subtract(fields.Datetime.now(), hours=1)
        if tries.search_count([("user_id", "=", self.env.uid), ("create_date", ">=", since)]) >= limit:
            raise UserError(
                self.env._(
                    "You tried %(count)s times in the last hour; wait a while before trying again.",
                    count=limit,
                )
            )
        tries.create({"user_id": self.env.uid})


class CatsMailSyncTry(models.Model):
    """One connection test or detection a user started (rate limit); kept for a day."""

    _name = "cats_mail_sync.try"
    _description = "Mailbox connection try"
    _log_access = True

    user_id = fields.Many2one("res.users", required=True, ondelete="cascade", index=True)

    @api.autovacuum
    def _gc_old_tries(self):
        self.search([("create_date", "<", fields.Datetime.subtract(fields.Datetime.now(), days=1))]).unlink()
