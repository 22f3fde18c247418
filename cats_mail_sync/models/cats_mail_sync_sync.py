import logging
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg2
from imapclient.exceptions import IMAPClientError

from odoo import api, fields, models
from odoo.tools.misc import format_datetime

from .. import series
from ..mailbox_client import errors
from ..mailbox_client.errors import _lt
from ..mailbox_client.reader import INBOX, MailboxReader, batches, groups
from .cats_mail_sync_run import in_english, note

_logger = logging.getLogger(__name__)

# Network trouble and server errors are retried at every run (every ten
# minutes) this many times in a row, then hourly, for as long as they last.
RETRIES_AT_EVERY_RUN = 6
RETRY_LATER = timedelta(hours=1)
# Key space of the PostgreSQL advisory locks that keep two runs off one mailbox.
LOCK_SPACE = 0x4341_5453  # "CATS"
# Key space of the locks that keep two runs from logging the same mail at the same moment.
MAIL_LOCK_SPACE = 0x4341_544D  # "CATM"
# A mail whose header the server's answers never hold is tried at this many runs, then passed over
# (named in the sync log), as long as the server reads other mail of its folder.
UNREAD_TRIES = RETRIES_AT_EVERY_RUN
# Mails before an unread one asked for to learn whether the server reads any mail of the folder.
NEIGHBOURS = 20
# A mail larger than this many MB (cats_mail_sync.max_mail_mb) is logged without its attachments.
MAX_MAIL_MB = 25
MB = 1024 * 1024
# Headers matched in one round of SQL (privacy and match); the reader fetches them BATCH_SIZE
# at a time. The mail they find is logged and committed group by group, the cursor with it.
MATCH_SIZE = 2000


@dataclass
class Tally:
    """What one run did, for the sync log."""

    folders: list = field(default_factory=list)
    looked_at: int = 0
    matched: int = 0
    logged: int = 0
    shortened: int = 0  # mails logged without their attachments (above the size limit)
    skipped: list = field(default_factory=list)  # values of cats_mail_sync.skipped
    message_ids: list = field(default_factory=list)  # the messages logged, one per record
    problems: list = field(default_factory=list)  # MailboxErrors, and technical lines (str)
    unexpected: bool = False  # a fault in Odoo or in this module stopped the run
    deadline: float | None = None  # time.monotonic() past which no batch starts
    # The look-back (see cats_mail_sync_sync_look_back.py): addresses looked back for, SEARCH
    # commands, mails found (that match), mails it logged (also counted in ``logged``), what to say.
    looked_back_for: set = field(default_factory=set)
    look_back_searches: int = 0
    found_back: int = 0
    logged_back: int = 0
    announced: bool = False  # started for new mail the listener heard of
    look_back_notes: list = field(default_factory=list)  # what to check (a search refused...): notes
    history_done: list = field(default_factory=list)  # news, a history logged to its end: notes

    def idle(self):
        """Whether the run found nothing to say: no new mail, nothing looked back for, no problem."""
        return not (
            self.looked_at
            or self.skipped
            or self.problems
            or self.unexpected
            or self.looked_back_for
            or self.found_back
            or self.look_back_notes
            or self.history_done
        )

    def add(self, other):
        """Count a batch that was committed."""
        self.looked_at += other.looked_at
        self.matched += other.matched
        self.logged += other.logged
        self.shortened += other.shortened
        self.skipped += other.skipped
        self.message_ids += other.message_ids

    def skip(self, folder, message_id, subject, date, reason):
        """A mail skipped; ``reason`` is a note (see cats_mail_sync_run.note), or a technical line."""
        self.skipped.append(
            {
                "folder": folder,
                "message_id": (message_id or "")[:250],
                "subject": (subject or "")[:250],
                "date": str(date or "")[:64],
                "reason": in_english([reason]),
                "reason_note": reason if isinstance(reason, dict) else False,
            }
        )


class CatsMailSyncSync(models.AbstractModel):
    """The synchronization: read each active mailbox's new mail and log it."""

    _name = "cats_mail_sync.sync"
    _description = "Mailbox synchronization"

    @api.model
    def _sync(self, user, deadline=None):
        """Log ``user``'s new mail; the number logged, None when another run holds the mailbox.

        No batch starts after ``deadline`` (a ``time.monotonic()``): the rest waits for the next run.
        """
        tally = self._sync_run(user, deadline)
        return tally and tally.logged

    @api.model
    def _sync_run(self, user, deadline=None):
        """As :meth:`_sync`, but what the run did (a :class:`Tally`), or None."""
        user = user.sudo()
        cr = self.env.cr
        # The database's clock, as the listener's announcements have it (to the microsecond): new
        # mail announced from now on waits for the next run.
        cr.execute(
            "SELECT pg_try_advisory_lock(%s, %s), clock_timestamp() AT TIME ZONE 'UTC'", (LOCK_SPACE, user.id)
        )
        locked, heard_until = cr.fetchone()
        if not locked:
            return None
        started_at, started = fields.Datetime.now(), time.monotonic()
        tally = Tally(deadline=deadline, announced=bool(user.mailbox_new_mail_at))
        try:
            try:
                with self.env["cats_mail_sync.connector"]._user_imap(user) as client:
                    reader = MailboxReader(client)
                    for folder in user.mailbox_folder_ids:
                        try:
                            self._sync_folder(user, reader, folder, tally)
                        except (errors.FolderGone, errors.MailUnread) as error:
                            # The other folder is still read; the recruiter is told below.
                            tally.problems.append(error)
                    self.env["cats_mail_sync.look_back_sync"]._look_back(user, reader, tally)
                if tally.problems:
                    raise tally.problems[0]
            except Exception as error:  # noqa: BLE001 - one mailbox's trouble never stops the others
                self._recover(error)
                self._failed(user, error, tally)
            else:
                self._checked(user, tally)
            self._record(user, tally, started_at, time.monotonic() - started)
            self.env.flush_all()  # a write conflict shows here, not in the caller's commit
            return tally
        except psycopg2.Error as error:
            # Writing the outcome conflicted (the recruiter saved the profile meanwhile, say):
            # back to the last commit (the mail logged stays), then record the real error.
            self._recover(error)
            try:
                self._failed(user, error, tally)
                self._record(user, tally, started_at, time.monotonic() - started)
                self.env.flush_all()
            except psycopg2.Error as again:
                self._recover(again)
                _logger.warning("Mailbox of user %s: the run could not be recorded (%s)", user.id, again)
            return tally
        finally:
            if tally.announced:  # else nothing announced before it began (one statement less)
                self._heard(user, heard_until)
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, user.id))

    @api.model
    def _heard(self, user, until):
        """The new mail the listener announced before this run began was looked for: the
        announcement goes (one made since stays, for the next run)."""
        self.env.cr.execute(
            "UPDATE res_users SET mailbox_new_mail_at = NULL WHERE id = %s AND mailbox_new_mail_at <= %s",
            [user.id, until],
        )
        user.invalidate_recordset(["mailbox_new_mail_at"])

    @api.model
    def _checked(self, user, tally):
        """Say on the mailbox that it was read without trouble: when, and how many checks since
        the last one that logged mail.

        A check of a sound mailbox changes only these two columns, written as they are: not
        through res.users' ``write``, whose overrides (and the write date, which the avatar's
        address depends on) are for the user's own changes. This runs 144 times a day per mailbox.
        """
        checks = 0 if tally.logged else user.mailbox_checks_since_logged + 1
        now = fields.Datetime.now()
        sound = user.mailbox_state == "active" and not (
            user.mailbox_error or user.mailbox_failures or user.mailbox_failing_since or user.mailbox_retry_at
        )
        if not sound:
            # Back to sound: the error goes, the outgoing server follows the state (see _mailbox_set_state).
            user._mailbox_set_state("active", mailbox_last_sync_at=now, mailbox_checks_since_logged=checks)
            return
        names = ["mailbox_last_sync_at", "mailbox_checks_since_logged"]
        user.flush_recordset(names)
        self.env.cr.execute(
            "UPDATE res_users SET mailbox_last_sync_at = %s, mailbox_checks_since_logged = %s WHERE id = %s",
            [now, checks, user.id],
        )
        user.invalidate_recordset(names)

    @api.model
    def _sync_folder(self, user, reader, folder, tally):
        """Log the new mail of one folder, committing group by group."""
        status = self._status(reader, folder)
        tally.folders.append(folder.name)
        rescan = status.uidvalidity != folder.uidvalidity
        if not rescan and status.last_uid <= folder.last_uid:
            return
        reader.open(folder.name)
        if rescan:
            # The server renumbered the folder: look again at everything since
            # the last good sync; logging by Message-ID keeps it once per record.
            uids = reader.uids_since((folder.synced_at - timedelta(days=1)).date())
        else:
            uids = reader.uids_after(folder.last_uid)
        limit = self._max_mail_bytes()
        for batch in batches(uids, MATCH_SIZE):
            if tally.deadline and time.monotonic() > tally.deadline:
                return  # the cursor says where the next run goes on
            done = Tally()
            # The server is read with no transaction open: the one that reads the
            # matches ends before the bodies are fetched, each one that logs after.
            headers, stop = self._readable(user, reader, folder, batch, tally)
            if rescan:
                headers = [h for h in headers if not h.received or h.received >= user.mailbox_activated_at]
            found = self._match_batch(user, folder, headers, done)
            self._commit()
            # Whole mails come in groups capped by size, each logged and committed with the cursor
            # up to the next group's first mail, and freed before the next group is fetched.
            in_groups = list(groups(found[uid][0] for uid in sorted(found))) or [[]]
            end = stop - 1 if stop else max(batch)
            for number, group in enumerate(in_groups):
                if number and tally.deadline and time.monotonic() > tally.deadline:
                    return
                last_uid = in_groups[number + 1][0].uid - 1 if number + 1 < len(in_groups) else end
                raw = self._fetch(reader, group, limit)
                with self._mails_locked(h.message_id for h in group):
                    with self.env.cr.savepoint():
                        if folder.role == "inbox" and not number:
                            user._mailbox_confirm_address(headers)
                        self._log_found(user, folder, {h.uid: found[h.uid] for h in group}, raw, done)
                        folder.write(
                            {
                                "uidvalidity": status.uidvalidity,
                                "last_uid": last_uid,
                                "synced_at": fields.Datetime.now(),
                            }
                        )
                    del raw  # before the next group is fetched
                    self._commit()
                tally.add(done)
                done = Tally()
            if stop:
                raise errors.MailUnread(folder=folder.name, uid=stop)  # the cursor stays before it
        # Everything up to the STATUS taken above has now been looked at.
        folder.write(
            {
                "uidvalidity": status.uidvalidity,
                "last_uid": max([status.last_uid, *uids]),
                "synced_at": fields.Datetime.now(),
            }
        )

    @api.model
    def _readable(self, user, reader, folder, uids, tally):
        """The headers of the mails ``uids`` of the open ``folder`` that can be read, up to the first
        one that cannot: ``(headers, stop)``, ``stop`` being the UID of that mail (None when every
        mail was read): the caller's cursor stays before it, and the next run reads from it again.

        A mail whose header the server's answers never held is tried at UNREAD_TRIES runs (counted
        in the folder's ``unread_tries``), then passed over and named in the sync log: one odd mail
        does not hold a mailbox up. Only where the server reads other mail of the folder: if it
        reads none, the mailbox stops (AnswersUnreadable) and nothing is passed over.
        """
        headers, unread = reader.headers(uids)
        tries = {int(uid): count for uid, count in (folder.unread_tries or {}).items()}
        if not unread and not tries:
            return headers, None
        for uid in uids:
            tries.pop(uid, None)  # read, or gone
        tries.update({uid: (folder.unread_tries or {}).get(str(uid), 0) + 1 for uid in unread})
        given_up = [uid for uid in unread if tries[uid] >= UNREAD_TRIES]
        if given_up and not headers and not self._reads_mail_before(reader, given_up[0]):
            _logger.warning(
                "Mailbox of user %s, folder %r: the answers of %s:%s to the header FETCH hold no "
                "header section for UIDs %s, nor for the mails before them",
                user.id,
                folder.name,
                user.mailbox_imap_host,
                user.mailbox_imap_port,
                unread[:10],
            )
            raise errors.AnswersUnreadable(folder=folder.name)
        for uid in given_up:
            del tries[uid]
            tally.skip(
                folder.name,
                "",
                "",
                "",
                note(
                    _lt(
                        "Passed over: the server's answers held no header for mail %(uid)s in %(tries)s runs."
                    ),
                    uid=uid,
                    tries=UNREAD_TRIES,
                ),
            )
        folder.unread_tries = {str(uid): count for uid, count in tries.items()}
        stop = next((uid for uid in unread if uid not in given_up), None)
        if stop:
            headers = [header for header in headers if header.uid < stop]
        return headers, stop

    @api.model
    def _reads_mail_before(self, reader, uid):
        """Whether the server reads any of the NEIGHBOURS mails before ``uid`` in the open folder."""
        if uid <= 1:
            return False
        before = [
            found for found in reader.search(["UID", f"{max(1, uid - NEIGHBOURS)}:{uid - 1}"]) if found < uid
        ]
        return bool(before and reader.headers(before).headers)

    @contextmanager
    def _mails_locked(self, message_ids):
        """Log mails that no other run is logging at the same moment: two mailboxes that hold the
        same mail (a candidate writing to two recruiters) take turns, the second one seeing what
        the first one logged, rather than both inserting it and one failing on the unique index.

        Session-level locks, one per Message-ID, taken in one order (no deadlock), then a commit:
        the logging transaction starts after the other run's commit, so that it sees its mail.
        Released after the logging transaction's commit.
        """
        keys = sorted({zlib.crc32(message_id.encode()) - 2**31 for message_id in message_ids})
        cr = self.env.cr
        lock = "SELECT pg_advisory_lock(%s, key) FROM unnest(%s::int[]) AS key"  # in the array's order
        unlock = "SELECT pg_advisory_unlock(%s, key) FROM unnest(%s::int[]) AS key"
        cr.execute(lock, [MAIL_LOCK_SPACE, keys])
        try:
            self._commit()
            yield
        finally:
            try:
                cr.execute(unlock, [MAIL_LOCK_SPACE, keys])
            except psycopg2.Error:
                # The logging transaction broke (its error is on its way): it is lost anyway, and
                # session locks outlive a rollback. Back to the last commit, then let them go.
                cr.rollback()
                cr.execute(unlock, [MAIL_LOCK_SPACE, keys])

    @api.model
    def _max_mail_bytes(self):
        """Mail above this size is logged without its attachments (cats_mail_sync.max_mail_mb)."""
        megabytes = self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.max_mail_mb")
        return int(float(megabytes or MAX_MAIL_MB) * MB)

    @api.model
    def _fetch(self, reader, headers, limit):
        """``{uid: raw bytes, or TextOnly above limit bytes}`` of the mails of ``headers``; a
        mail deleted meanwhile is left out."""
        raw = reader.messages([h.uid for h in headers if h.size <= limit])
        for header in headers:
            if header.size > limit:
                text = reader.text_only(header.uid, limit)
                if text is not None:
                    raw[header.uid] = text
        return raw

    @api.model
    def _status(self, reader, folder):
        """The folder's status; a Sent folder renamed or replaced is found again."""
        try:
            return reader.status(folder.name)
        except IMAPClientError:
            if reader.exists(folder.name):
                raise
        if folder.role == "inbox":
            raise errors.FolderGone(folder=INBOX)
        try:
            name = reader.find_sent_folder()
        except errors.FolderNotFound:
            raise errors.FolderGone(folder=folder.name) from None
        _logger.info("Sent folder %r is now %r", folder.name, name)
        folder.name = name
        return reader.status(name)

    @api.model
    def _match_batch(self, user, folder, headers, tally):
        """The mails of a batch of headers to log: ``{uid: (header, {record: Bcc addresses it
        matched through}, author)}``.

        Mail whose every other party is internal, or that involves an excluded
        address, is not logged; internal and excluded addresses match nothing.
        """
        with_bcc = folder.role == "sent"
        tally.looked_at += len(headers)
        logger = self.env["cats_mail_sync.logger"]
        own = user._mailbox_own_addresses()
        all_parties = [header.addresses(with_bcc) - own for header in headers]
        addresses = set().union(*all_parties)
        internal, excluded = logger._privacy(addresses, user)
        matches = logger._match(addresses - internal - excluded, user)
        found = {}
        for header, parties in zip(headers, all_parties, strict=True):
            # Mail with no party matched (most mail) would find no record: passed over first.
            if matches.keys().isdisjoint(parties) or not parties - internal or parties & excluded:
                continue
            records = {}
            for address in sorted(parties):
                for record in matches.get(address, []):
                    through = records.setdefault(record, set())
                    if with_bcc and address in header.blind_recipients - header.senders - header.recipients:
                        through.add(address)
            if records:
                found[header.uid] = (header, records, self._author(user, header, matches, own))
        tally.matched += len(found)
        return found

    @api.model
    def _log_found(self, user, folder, found, raw, tally):
        """Log the mails found, as fetched in ``raw`` (``{uid: bytes or TextOnly}``)."""
        mails = []
        for uid, (header, records, author) in found.items():
            if uid in raw:
                mails.append((raw[uid], records, author))
            else:
                tally.skip(
                    folder.name,
                    header.message_id,
                    "",
                    header.received,
                    note(_lt("deleted before it could be read")),
                )
        if not mails:
            return
        logged, shortened, skipped, posted = self.env["cats_mail_sync.logger"]._log(user, mails)
        tally.logged += logged
        tally.shortened += shortened
        tally.message_ids += posted
        for values, reason in skipped:
            tally.skip(folder.name, values["message_id"], values.get("subject"), values.get("date"), reason)

    @api.model
    def _author(self, user, header, matches, own):
        for sender in sorted(header.senders):
            if sender in own:
                return user.partner_id
            for record in matches.get(sender, []):
                if record._name == series.PERSON and record.partner_id:
                    return record.partner_id
                if record._name == "res.partner":
                    return record
        return self.env["res.partner"]

    @api.model
    def _failed(self, user, error, tally):
        """Record a failed run: a definitive problem stops the mailbox; other trouble is retried,
        at every run first, then hourly, for as long as it lasts."""
        if isinstance(error, (IMAPClientError, OSError)):
            error = errors.MailboxError()
        elif isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError)):
            # A conflict with another transaction, or the database connection lost.
            error = errors.SyncInterrupted()
        elif not isinstance(error, errors.MailboxError):
            return self._failed_unexpectedly(user, error, tally)
        message = user._mailbox_explain(error)
        if error not in tally.problems:  # a folder's problem, raised again to stop the run
            tally.problems.append(error)
        _logger.info("Mailbox of user %s failed: %s", user.id, error)
        if error.definitive:
            user._mailbox_set_state(
                "error", mailbox_error=message, mailbox_failures=user.mailbox_failures + 1
            )
            user.partner_id.sudo().message_notify(
                partner_ids=user.partner_id.ids,
                subject=self.env._("Your mailbox is no longer logged"),
                body=self.env._(
                    "Mail from your mailbox is no longer logged in Odoo: %(problem)s "
                    "Correct the settings in My Profile (Email tab) to resume.",
                    problem=message,
                ),
            )
            return
        since = user.mailbox_failing_since or fields.Datetime.now()
        retrying = user.with_context(lang=user.lang).env._(
            "%(problem)s Retrying since %(since)s; nothing is lost.",
            problem=message,
            since=format_datetime(user.env, since, tz=user.tz),
        )
        self._retry_later(user, retrying)

    @api.model
    def _failed_unexpectedly(self, user, error, tally):
        """Record a run stopped by a fault in Odoo or in this module: a problem to report.

        Its traceback goes to the server log once per mailbox (not again while the same fault
        repeats); the mailbox stays active and is tried again like after network trouble.
        """
        kind = type(error).__name__
        unexpected = errors.UnexpectedError(kind=kind)
        message = user._mailbox_explain(unexpected)
        if user.mailbox_error == message:
            _logger.warning("Mailbox of user %s: the same unexpected error again (%s)", user.id, kind)
        else:
            _logger.exception("Synchronization of the mailbox of user %s failed unexpectedly", user.id)
        tally.unexpected = True
        tally.problems += [unexpected, f"{kind}: {str(error)[:300]}"]
        self._retry_later(user, message)

    @api.model
    def _retry_later(self, user, message):
        """The mailbox stays active, saying ``message``: tried again at every run first, then hourly."""
        now = fields.Datetime.now()
        failures = user.mailbox_failures + 1
        user._mailbox_set_state(
            "active",
            mailbox_error=message,
            mailbox_failures=failures,
            mailbox_failing_since=user.mailbox_failing_since or now,
            mailbox_retry_at=now + (timedelta(minutes=9) if failures < RETRIES_AT_EVERY_RUN else RETRY_LATER),
        )

    @api.model
    def _record(self, user, tally, started_at, seconds):
        """Write the run in the mailbox's sync log, unless it was an idle check: those are counted
        on the mailbox (last checked, checks since the last logged mail), with no row of their own
        (a mailbox is checked 144 times a day)."""
        if tally.idle():
            return
        # Kept as sentences and values, read in the reader's language; in English beside them.
        notes = {
            "error": [problem if isinstance(problem, str) else note(problem) for problem in tally.problems],
            "look_back_note": tally.look_back_notes,
            "look_back_done": tally.history_done,
        }
        self.env["cats_mail_sync.run"].sudo().create(
            {
                "user_id": user.id,
                "started_at": started_at,
                "duration": seconds,
                "folders": ", ".join(tally.folders),
                "looked_at": tally.looked_at,
                "matched": tally.matched,
                "logged": tally.logged,
                "shortened": tally.shortened,
                "skipped": len(tally.skipped),
                "looked_back_for": len(tally.looked_back_for),
                "found_back": tally.found_back,
                "logged_back": tally.logged_back,
                **{name: in_english(kept) or False for name, kept in notes.items()},
                "notes": notes,
                "unexpected": tally.unexpected,
                "announced": tally.announced,
                "skipped_ids": [fields.Command.create(values) for values in tally.skipped],
                "logged_message_ids": [fields.Command.set(tally.message_ids)],
            }
        )

    @api.model
    def _recover(self, error):
        """After a database error, go back to the last commit (batches are committed as they go)."""
        if isinstance(error, psycopg2.Error) and not series.in_test_mode():
            self.env.cr.rollback()
            self.env.invalidate_all()

    @api.model
    def _commit(self):
        """Commit a finished step of a scheduled run (never inside tests)."""
        if not series.in_test_mode():
            self.env.cr.commit()  # pylint: disable=invalid-commit
