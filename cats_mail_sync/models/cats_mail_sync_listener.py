"""New mail on the record within seconds: what the listener (IMAP IDLE) reads and writes.

The listener process (``listener_service.py``, started by ``odoo cats_mail_sync_listen``) holds a
connection per mailbox (:mod:`mailbox_client.listener`) and only signals: a mailbox with new mail
is *announced* (``mailbox_new_mail_at``) and the scheduled action is triggered, which syncs the
announced mailboxes at once through the one engine that logs mail. The 10-minute cycle stays the
safety net: a listener that is down, slow or cut off loses nothing.
"""

from datetime import UTC, datetime, timedelta

from odoo import api, fields, models

from ..mailbox_client import connection
from ..mailbox_client.listener import Watch

# A listener that has not said it is alive for this long is gone (it says so every few seconds).
ALIVE_SECONDS = 60
LISTENING_STATES = [
    ("listening", "Listening"),
    ("connecting", "Connecting"),
    ("waiting", "Waiting to retry"),
    ("unsupported", "Not offered by the server"),
]


class CatsMailSyncListener(models.Model):
    """A listener process: which one holds the mailboxes' connections, and since when it is seen."""

    _name = "cats_mail_sync.listener"
    _description = "Mail listener (IMAP IDLE)"
    _order = "seen_at desc"

    name = fields.Char("Process", required=True, readonly=True, help="Host and process id.")
    started_at = fields.Datetime("Started", required=True, readonly=True)
    seen_at = fields.Datetime("Last seen", required=True, readonly=True)
    holding = fields.Boolean("Holds the connections", readonly=True)
    connections = fields.Integer("Connections held", readonly=True)

    @api.model
    def _enabled(self):
        """Whether an administrator lets mail be logged within seconds (Settings)."""
        return self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.listen", "True") != "False"

    @api.model
    def _alive(self):
        """The listener holding the connections now, if one is alive."""
        since = fields.Datetime.now() - timedelta(seconds=ALIVE_SECONDS)
        return self.sudo().search([("holding", "=", True), ("seen_at", ">=", since)], limit=1)

    @api.model
    def _watches(self, credential):
        """The active mailboxes to listen to: ``[Watch]``, read in one query (every few seconds).
        ``credential(user_id, server, login)`` gives each new connection its password or a fresh
        access token (``cats_mail_sync.credentials._for``: only to the server and login it was
        saved for). A watch's ``revision`` changes with the saved secret or sign-in (a digest of
        the encrypted secret, never the secret): the listener then connects again."""
        options = self.env["cats_mail_sync.connector"]._options()
        self.env.cr.execute(
            """
            SELECT u.id, u.mailbox_imap_host, u.mailbox_imap_port, u.mailbox_imap_security, u.mailbox_login,
                   md5(concat(u.cats_mailbox_password, '|', u.mailbox_oauth_provider, '|',
                              (SELECT max(t.id) FROM cats_mail_sync_token t WHERE t.user_id = u.id))),
                   inbox.name, sent.name
              FROM res_users u
              JOIN cats_mail_sync_folder inbox ON inbox.user_id = u.id AND inbox.role = 'inbox'
              LEFT JOIN cats_mail_sync_folder sent ON sent.user_id = u.id AND sent.role = 'sent'
             WHERE u.mailbox_state = 'active'
             ORDER BY u.id
            """
        )
        watches = []
        for user_id, host, port, security, login, revision, inbox, sent in self.env.cr.fetchall():
            server = connection.Server(host, port, security)
            watches.append(
                Watch(
                    key=user_id,
                    server=server,
                    login=login,
                    credential=lambda user_id=user_id, server=server, login=login: credential(
                        user_id, server, login
                    ),
                    inbox=inbox,
                    sent=sent,
                    ca_file=options["ca_file"],
                    allow_private=options["allow_private"],
                    revision=revision,
                )
            )
        return watches

    @api.model
    def _announce(self, user_ids):
        """New mail reached these mailboxes: sync them now (the scheduled action, triggered)."""
        self.env.cr.execute(
            "UPDATE res_users SET mailbox_new_mail_at = clock_timestamp() AT TIME ZONE 'UTC' "
            "WHERE id = ANY(%s) AND mailbox_state = 'active'",
            [list(user_ids)],
        )
        if self.env.cr.rowcount:
            self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync").sudo()._trigger()
        self.env["res.users"].invalidate_model(["mailbox_new_mail_at"])

    @api.model
    def _report(self, changed, gone):
        """Say on each mailbox what the listener does for it: ``changed`` ``{user_id:
        MailboxStatus}``; ``gone``: the user ids no longer listened to."""
        listening = self.env["cats_mail_sync.listening"].sudo()
        rows = {row.user_id.id: row for row in listening.search([("user_id", "in", [*changed, *gone])])}
        listening.browse([rows[user_id].id for user_id in gone if user_id in rows]).unlink()
        new = []
        for user_id, status in changed.items():
            values = {
                "state": status.state,
                "since": status.since and _utc(status.since),
                "until": status.until and _utc(status.until),
                "error": status.error or False,
                "connections": status.connections,
            }
            if user_id in rows:
                rows[user_id].write(values)
            else:
                new.append({"user_id": user_id, **values})
        listening.create(new)


def _utc(timestamp):
    """A :func:`time.time` as Odoo stores datetimes (UTC, naive, to the second)."""
    return datetime.fromtimestamp(int(timestamp), UTC).replace(tzinfo=None)


class CatsMailSyncListening(models.Model):
    """What the listener does for one mailbox now (written by the listener process)."""

    _name = "cats_mail_sync.listening"
    _description = "Mailbox listened to (IMAP IDLE)"
    _rec_name = "user_id"

    user_id = fields.Many2one("res.users", "Mailbox of", required=True, ondelete="cascade", index=True)
    state = fields.Selection(LISTENING_STATES, required=True, readonly=True)
    since = fields.Datetime(readonly=True)
    until = fields.Datetime("Next try", readonly=True)
    error = fields.Char("Problem", readonly=True)
    connections = fields.Integer(readonly=True)
