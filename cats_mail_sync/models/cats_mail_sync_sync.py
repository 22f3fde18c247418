import logging
import threading
from datetime import timedelta

from imapclient.exceptions import IMAPClientError

from odoo import api, fields, models

from ..mailbox_client import errors
from ..mailbox_client.reader import MailboxReader, batches

_logger = logging.getLogger(__name__)

# Network trouble is retried at every run; this many failures in a row (one
# hour at one run every ten minutes) put the mailbox in error.
FAILURES_BEFORE_ERROR = 6
# Key space of the PostgreSQL advisory locks that keep two runs off one mailbox.
LOCK_SPACE = 0x4341_5453  # "CATS"


def in_test_mode():
    return getattr(threading.current_thread(), "testing", False)


class CatsMailSyncSync(models.AbstractModel):
    """The synchronization: read each active mailbox's new mail and log it."""

    _name = "cats_mail_sync.sync"
    _description = "Mailbox synchronization"

    @api.model
    def _cron(self):
        """Scheduled action: log new mail of every active mailbox, one at a time."""
        self.env["cats_mail_sync.setup"]._forget_old_passwords()
        users = self.env["res.users"].sudo().search([("mailbox_state", "=", "active")])
        for user in users:
            self._sync(user)
            self._commit()

    @api.model
    def _sync(self, user):
        """Log ``user``'s new mail; the number logged, None when another run holds the mailbox."""
        user = user.sudo()
        cr = self.env.cr
        cr.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, user.id))
        if not cr.fetchone()[0]:
            return None
        try:
            logged = 0
            with self.env["cats_mail_sync.connector"]._user_imap(user) as client:
                reader = MailboxReader(client)
                for folder in user.mailbox_folder_ids:
                    logged += self._sync_folder(user, reader, folder)
            user._mailbox_set_state("active", mailbox_last_sync_at=fields.Datetime.now())
            return logged
        except Exception as error:  # noqa: BLE001 - one mailbox's trouble never stops the others
            # Work not yet committed was undone by its batch's savepoint.
            self._failed(user, error)
            return 0
        finally:
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, user.id))

    @api.model
    def _sync_folder(self, user, reader, folder):
        """Log the new mail of one folder, committing batch by batch."""
        status = reader.status(folder.name)
        rescan = status.uidvalidity != folder.uidvalidity
        if not rescan and status.last_uid <= folder.last_uid:
            return 0
        reader.open(folder.name)
        if rescan:
            # The server renumbered the folder: look again at everything since
            # the last good sync; logging by Message-ID keeps it once per record.
            uids = reader.uids_since((folder.synced_at - timedelta(days=1)).date())
        else:
            uids = reader.uids_after(folder.last_uid)
        logged = 0
        for batch in batches(uids):
            with self.env.cr.savepoint():
                headers = reader.headers(batch)
                if rescan:
                    headers = [
                        h for h in headers if not h.received or h.received >= user.mailbox_activated_at
                    ]
                if folder.role == "inbox":
                    user._mailbox_confirm_address(headers)
                logged += self._log_batch(user, reader, headers, with_bcc=folder.role == "sent")
                folder.write(
                    {
                        "uidvalidity": status.uidvalidity,
                        "last_uid": max(batch),
                        "synced_at": fields.Datetime.now(),
                    }
                )
            self._commit()
        # Everything up to the STATUS taken above has now been looked at.
        folder.write(
            {
                "uidvalidity": status.uidvalidity,
                "last_uid": max([status.last_uid, *uids]),
                "synced_at": fields.Datetime.now(),
            }
        )
        return logged

    @api.model
    def _log_batch(self, user, reader, headers, with_bcc):
        """Match a batch of headers, fetch the matching mails whole, log them.

        Mail whose every other party is internal, or that involves an excluded
        address, is not logged; internal and excluded addresses match nothing.
        """
        logger = self.env["cats_mail_sync.logger"]
        own = user._mailbox_own_addresses()
        addresses = set().union(*(h.addresses(with_bcc) for h in headers)) - own
        internal, excluded = logger._privacy(addresses, user)
        matches = logger._match(addresses - internal - excluded, user)
        found = {}
        for header in headers:
            parties = header.addresses(with_bcc) - own
            if not parties - internal or parties & excluded:
                continue
            # Each record, with the Bcc addresses (only) it matched through.
            records = {}
            for address in sorted(parties):
                for record in matches.get(address, []):
                    through = records.setdefault(record, set())
                    if with_bcc and address in header.blind_recipients - header.senders - header.recipients:
                        through.add(address)
            if records:
                found[header.uid] = (records, self._author(user, header, matches, own))
        if not found:
            return 0
        raw = reader.messages(list(found))
        return logger._log(user, [(raw[uid], records, author) for uid, (records, author) in found.items()])

    @api.model
    def _author(self, user, header, matches, own):
        for sender in sorted(header.senders):
            if sender in own:
                return user.partner_id
            for record in matches.get(sender, []):
                if record._name == "hr.candidate" and record.partner_id:
                    return record.partner_id
                if record._name == "res.partner":
                    return record
        return self.env["res.partner"]

    @api.model
    def _failed(self, user, error):
        """Record a failed run: definitive errors and repeated trouble stop the mailbox."""
        if isinstance(error, (IMAPClientError, OSError)):
            error = errors.MailboxError()
        elif not isinstance(error, errors.MailboxError):
            _logger.exception("Synchronization of the mailbox of user %s was interrupted", user.id)
            error = errors.SyncInterrupted()
        failures = user.mailbox_failures + 1
        message = user._mailbox_explain(error)
        _logger.info("Mailbox of user %s failed (%s in a row): %s", user.id, failures, error)
        if error.definitive or failures >= FAILURES_BEFORE_ERROR:
            user._mailbox_set_state("error", mailbox_error=message, mailbox_failures=failures)
            user.partner_id.sudo().message_notify(
                partner_ids=user.partner_id.ids,
                subject=self.env._("Your mailbox is no longer logged"),
                body=self.env._(
                    "Mail from your mailbox is no longer logged in Odoo: %(problem)s "
                    "Correct the settings in My Profile (Email tab) to resume.",
                    problem=message,
                ),
            )
        else:
            user._mailbox_set_state("active", mailbox_error=message, mailbox_failures=failures)

    @api.model
    def _commit(self):
        """Commit a finished step of a scheduled run (never inside tests)."""
        if not in_test_mode():
            self.env.cr.commit()  # pylint: disable=invalid-commit
