from odoo import api, fields, models
from odoo.tools import SQL

# Transactions open longer than this are not Odoo's own (see _horizon).
OPEN_FOR_LONG = "1 hour"


class CatsMailSyncLookBack(models.Model):
    """An address that has just become one that matches: a new candidate or contact, an address
    added or changed, an archived one restored. Each active mailbox's folders look back for its
    mail once (see ``cats_mail_sync.look_back_sync``).

    One row per address, whatever the number of mailboxes: each folder keeps where it is in this
    list (``look_back_date``, ``look_back_id``: the last row it has looked back for, in the order
    of ``create_date, id``), and rows every folder has passed are deleted.

    A row is taken only once every transaction that started before it has ended: a long import
    that commits later has older rows than the ones a folder has already passed, and its rows
    would otherwise be skipped (see :meth:`_horizon`).
    """

    _name = "cats_mail_sync.look_back"
    _description = "Address to look back for in the mailboxes"
    _order = "create_date, id"
    _rec_name = "address"

    address = fields.Char(required=True, readonly=True)
    create_date = fields.Datetime(index=True, readonly=True)

    @api.model
    def _queue(self, addresses):
        """Look back for ``addresses`` (normalized) in every active mailbox; a run starts at once."""
        addresses = sorted({address for address in addresses if address})
        if not addresses:
            return
        # Read below in SQL: what this transaction changed of them (an activation) counts.
        self.env["res.users"].flush_model(["mailbox_state"])
        self.env["cats_mail_sync.folder"].flush_model()
        cr = self.env.cr
        cr.execute(
            """
            SELECT f.look_back_date, COALESCE(f.look_back_id, 0)
              FROM cats_mail_sync_folder f JOIN res_users u ON u.id = f.user_id
             WHERE u.mailbox_state = 'active'
             ORDER BY 1 DESC, 2 DESC
             LIMIT 1
            """
        )
        furthest = cr.fetchone()
        if not furthest:
            return  # no active mailbox: there is nothing to look back in
        # An address that no folder has passed yet is looked for once, however often it is queued.
        cr.execute(
            "SELECT address FROM cats_mail_sync_look_back "
            "WHERE (create_date, id) > (%s, %s) AND address = ANY(%s)",
            [*furthest, addresses],
        )
        waiting = {row[0] for row in cr.fetchall()}
        new = [address for address in addresses if address not in waiting]
        if new:
            self.sudo().create([{"address": address} for address in new])
            # The recruiter who just made the candidate sees the mail in a minute, not at the next tick.
            self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync").sudo()._trigger()

    @api.model
    def _queue_users(self, users):
        """Look back for the contacts made with new ``users``, those of portal users only: mail
        with an internal address is never logged, yet every active mailbox would search for it.
        (A user given an existing contact adds no address: it was looked back for when made.)"""
        self._queue(users.filtered("share").partner_id._look_back_addresses())

    @api.model
    def _horizon(self):
        """Rows created before this moment are all visible (no transaction that started earlier is
        still open, ours aside); None when any row may be taken.

        A transaction open for more than OPEN_FOR_LONG is not Odoo's (its time limits end requests,
        scheduled actions and jobs well before): it does not hold the look-back up.
        """
        # PostgreSQL keeps what a transaction read of pg_stat_activity until it ends: read afresh.
        self.env.cr.execute("SELECT pg_stat_clear_snapshot()")
        self.env.cr.execute(
            """
            SELECT min(xact_start) AT TIME ZONE 'UTC'
              FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND xact_start > now() - %s::interval
            """,
            [OPEN_FOR_LONG],
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _pending(self, folder, limit, through=None):
        """The next ``limit`` rows ``folder`` has not looked back for, up to row id ``through`` when
        given (a step under way): ``[(id, create_date, address)]``.

        Rows not yet visible to every transaction (see ``_horizon``) wait; the horizon is read only
        when there are rows (an idle check reads none), and rows come in creation order, so those it
        leaves out are the last ones.
        """
        self.env.cr.execute(
            SQL(
                """
                SELECT id, create_date, address
                  FROM cats_mail_sync_look_back
                 WHERE (create_date, id) > (%s, %s) %s
                 ORDER BY create_date, id
                 LIMIT %s
                """,
                folder.look_back_date,
                folder.look_back_id,
                SQL(
                    "AND (create_date, id) <= "
                    "(SELECT create_date, id FROM cats_mail_sync_look_back WHERE id = %s)",
                    through,
                )
                if through
                else SQL(),
                limit,
            )
        )
        rows = self.env.cr.fetchall()
        horizon = rows and self._horizon()
        return [row for row in rows if row[1] < horizon] if horizon else rows

    @api.model
    def _users_waiting(self):
        """Ids of the users whose folders have a look-back or a history to do now (a search the
        server refused waits for the next scheduled run)."""
        horizon = self._horizon()
        self.env.cr.execute(
            SQL(
                """
                SELECT DISTINCT f.user_id
                  FROM cats_mail_sync_folder f
                 WHERE f.look_back_refused IS NOT TRUE
                   AND ((f.history_from IS NOT NULL AND f.history_done_at IS NULL)
                        OR EXISTS (SELECT 1 FROM cats_mail_sync_look_back l
                                    WHERE (l.create_date, l.id)
                                        > (f.look_back_date, COALESCE(f.look_back_id, 0)) %s))
                """,
                SQL("AND l.create_date < %s", horizon) if horizon else SQL(),
            )
        )
        return [row[0] for row in self.env.cr.fetchall()]

    @api.model
    def _gc(self):
        """Forget the rows every folder has looked back for."""
        self.env.cr.execute(
            """
            DELETE FROM cats_mail_sync_look_back
             WHERE NOT EXISTS (SELECT 1 FROM cats_mail_sync_folder f
                                WHERE (f.look_back_date, COALESCE(f.look_back_id, 0))
                                    < (cats_mail_sync_look_back.create_date, cats_mail_sync_look_back.id))
            """
        )

    @api.autovacuum
    def _gc_passed(self):
        self._gc()


class CatsMailSyncLookBackSource(models.AbstractModel):
    """Records whose addresses match mail (candidates, contacts): an address that becomes one
    that matches (a new record, an address added or changed, a record restored) is looked back for.

    A model that inherits this names the fields its addresses depend on and says which they are.
    """

    _name = "cats_mail_sync.look_back.source"
    _description = "Records whose new addresses are looked back for"
    _look_back_fields = ()

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        if not self.env.context.get("cats_mail_sync_new_user"):  # see _queue_users
            self.env["cats_mail_sync.look_back"]._queue(records._look_back_addresses())
        return records

    def write(self, vals):
        if not set(self._look_back_fields) & set(vals):
            return super().write(vals)
        before = self._look_back_addresses()
        result = super().write(vals)
        self.env["cats_mail_sync.look_back"]._queue(self._look_back_addresses() - before)
        return result

    def _look_back_addresses(self):
        """The normalized addresses through which these records' mail is matched."""
        raise NotImplementedError
