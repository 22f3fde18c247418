import time
from dataclasses import dataclass
from datetime import timedelta

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from odoo import api, fields, models

from ..mailbox_client import errors
from ..mailbox_client.errors import _lt
from ..mailbox_client.reader import ADDRESSES_PER_SEARCH, batches, groups
from .cats_mail_sync_run import note
from .cats_mail_sync_sync import Tally

# Addresses taken from the look-back list at a time: their mail is found with a few SEARCH
# commands (ADDRESSES_PER_SEARCH each), and where a folder is in the list is committed after them.
ADDRESSES_PER_STEP = 4 * ADDRESSES_PER_SEARCH
# Share of a run's time budget (cats_mail_sync.run_seconds) one mailbox's look-back and history may
# take in a run: after an import of thousands of contacts, every mailbox still gets its new mail
# read in each run, and the look-back goes on in the next runs (asked for at once).
LOOK_BACK_SHARE = 0.1


@dataclass
class Scope:
    """Which mail of a folder a look-back or the history may log: the SEARCH keys that bound it on
    the server, and the test each mail's headers must pass (INTERNALDATE where UIDs cannot say)."""

    criteria: list
    keeps: object = None

    def kept(self, headers):
        return [header for header in headers if not self.keeps or self.keeps(header)]


class CatsMailSyncLookBackSync(models.AbstractModel):
    """Look back: the mail of addresses that have just become ones that match (a new candidate or
    contact, a changed or restored address), from each folder's activation up to its cursor; and
    the history a recruiter asked for at activation. Logged as the scan logs (the same matching
    and logging of ``cats_mail_sync.sync``), within the run's time budget, resumed by the next run."""

    _name = "cats_mail_sync.look_back_sync"
    _description = "Looking back in a mailbox"

    @api.model
    def _look_back(self, user, reader, tally):
        """After the new mail of a run: the look-back and the history of each folder read."""
        share = time.monotonic() + self.env["cats_mail_sync.sync"]._run_seconds() * LOOK_BACK_SHARE
        tally.deadline = min(tally.deadline, share) if tally.deadline else share
        for folder in user.mailbox_folder_ids:
            if folder.name not in tally.folders:
                continue  # not read this run (gone): its look-back waits
            try:
                opened = self._look_back_folder(user, reader, folder, tally)
                self._history_folder(user, reader, folder, tally, opened)
            except IMAPClientAbortError:
                raise  # the connection is lost: the run fails as any other
            except IMAPClientError as error:
                # The server refused a command (a SEARCH it cannot do): said, tried again at the
                # next scheduled run; the new mail was logged before.
                reason = str(error).replace("SEARCH command error: ", "")[:200]
                tally.look_back_notes.append(note(errors.SearchRefused(folder=folder.name, reason=reason)))
                folder.look_back_refused = True
                self._commit()
        if self._past_deadline(tally) and user.id in self.env["cats_mail_sync.look_back"]._users_waiting():
            # Cut short by the time budget: a run soon goes on with it (the scheduled run asks for one
            # too, at once; a queue_job job does not, and the next tick would be 10 minutes away).
            cron = self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")
            cron._trigger(fields.Datetime.now() + timedelta(minutes=1))

    @api.model
    def _look_back_folder(self, user, reader, folder, tally):
        """Look back in ``folder`` for the addresses it has not looked back for yet; whether the
        folder was opened."""
        look_back = self.env["cats_mail_sync.look_back"]
        opened = False
        while not self._past_deadline(tally):
            # A step cut short goes on with the same addresses: its progress (look_back_uid) is theirs.
            under_way = folder.look_back_uid and folder.look_back_uidvalidity == folder.uidvalidity
            rows = look_back._pending(
                folder, ADDRESSES_PER_STEP, folder.look_back_step_id if under_way else None
            )
            if not rows:
                break
            if not under_way:
                folder.write({"look_back_step_id": rows[-1][0], "look_back_uid": 0})
            addresses = sorted({address for _id, _date, address in rows})
            scope = self._look_back_scope(user, folder)
            if scope:
                if not opened:
                    if reader.open(folder.name) != folder.uidvalidity:
                        return False  # renumbered since the scan: the next run's scan comes first
                    opened = True
                if not self._look_back_for(user, reader, folder, addresses, scope, tally):
                    return opened
            tally.looked_back_for.update(addresses)
            last_id, last_date, _address = rows[-1]
            folder.write(
                {
                    "look_back_date": last_date,
                    "look_back_id": last_id,
                    "look_back_uid": 0,
                    "look_back_step_id": 0,
                    "look_back_refused": False,
                }
            )
            self._commit()
        return opened

    @api.model
    def _look_back_scope(self, user, folder):
        """The folder's mail a look-back searches: from its first UID after activation (or, with a
        history, from the history's start) up to its cursor; None when there is none."""
        last = folder.last_uid
        start = folder.history_from or user.mailbox_activated_at
        if last < 1 or not start:
            return None
        first = folder.first_uid if folder.first_uidvalidity == folder.uidvalidity else 0
        day = (start - timedelta(days=1)).date()
        if first and not folder.history_from:
            return Scope(["UID", f"{first}:{last}"]) if first <= last else None
        if first:
            # Since activation by UID, and before it by INTERNALDATE back to the history's start.
            return Scope(
                ["UID", f"1:{last}", "OR", "UID", f"{first}:{max(first, last)}", "SINCE", day],
                lambda header: header.uid >= first or not header.received or header.received >= start,
            )
        # The folder was renumbered since activation (or activated before look-backs): by date.
        return Scope(
            ["UID", f"1:{last}", "SINCE", day],
            lambda header: not header.received or header.received >= start,
        )

    @api.model
    def _look_back_for(self, user, reader, folder, addresses, scope, tally):
        """Log the mail of ``addresses`` in the open ``folder`` within ``scope``, on their records
        only; False when the time budget ran out first (``look_back_uid`` says how far it got)."""
        searched = reader.search_addresses(addresses, scope.criteria, with_bcc=folder.role == "sent")
        tally.look_back_searches += searched.commands
        if searched.by_tail:
            tally.look_back_notes.append(
                note(
                    _lt(
                        "%(folder)s: the server searches only in US-ASCII; looked for by their ASCII end: "
                        "%(addresses)s."
                    ),
                    folder=folder.name,
                    addresses=", ".join(searched.by_tail[:10]),
                )
            )
        if searched.unsearchable:
            tally.look_back_notes.append(
                note(
                    _lt(
                        "%(folder)s: not looked back for (the server searches only in US-ASCII): "
                        "%(addresses)s."
                    ),
                    folder=folder.name,
                    addresses=", ".join(searched.unsearchable[:10]),
                )
            )
        after = folder.look_back_uid if folder.look_back_uidvalidity == folder.uidvalidity else 0
        uids = sorted(uid for uid in searched.uids if after < uid <= folder.last_uid)
        if not uids:
            return True  # most addresses of an import have no mail: nothing more to do
        logger = self.env["cats_mail_sync.logger"]
        wanted = set().union(*logger._match(set(addresses), user).values())
        return self._log_uids(user, reader, folder, uids, scope, tally, "look_back_uid", wanted)

    @api.model
    def _history_folder(self, user, reader, folder, tally, opened):
        """Log the folder's mail from before activation back to the history's start, as the scan
        would have; resumed run after run until done."""
        if not folder.history_from or folder.history_done_at or self._past_deadline(tally):
            return
        if not opened and reader.open(folder.name) != folder.uidvalidity:
            return
        activated = user.mailbox_activated_at
        start = folder.history_from
        day = (start - timedelta(days=1)).date()
        if folder.first_uid and folder.first_uidvalidity == folder.uidvalidity:
            if folder.first_uid <= 1:
                folder.history_done_at = fields.Datetime.now()  # nothing before activation
                self._commit()
                tally.history_done.append(self._history_done(folder))
                return
            scope = Scope(
                ["UID", f"1:{folder.first_uid - 1}", "SINCE", day],
                lambda header: (
                    header.uid < folder.first_uid and (not header.received or header.received >= start)
                ),
            )
        else:
            scope = Scope(
                [
                    "UID",
                    f"1:{max(folder.last_uid, 1)}",
                    "SINCE",
                    day,
                    "BEFORE",
                    (activated + timedelta(days=1)).date(),
                ],
                lambda header: bool(header.received) and start <= header.received < activated,
            )
        after = folder.history_uid if folder.look_back_uidvalidity == folder.uidvalidity else 0
        uids = [uid for uid in reader.search(scope.criteria) if uid > after]
        if self._log_uids(user, reader, folder, uids, scope, tally, "history_uid"):
            folder.history_done_at = fields.Datetime.now()
            self._commit()
            tally.history_done.append(self._history_done(folder))

    @api.model
    def _history_done(self, folder):
        return note(
            _lt("%(folder)s: earlier mail back to %(since)s is logged."),
            folder=folder.name,
            since=folder.history_from,
        )

    @api.model
    def _log_uids(self, user, reader, folder, uids, scope, tally, cursor, wanted=None):
        """Match and log the mails ``uids`` of the open folder as the scan does (on the ``wanted``
        records only, when given), committing group by group with ``cursor`` (a folder field: the
        UID up to which it is done); False when the time budget ran out first, or a mail could not
        be read (the cursor stays before it)."""
        sync = self.env["cats_mail_sync.sync"]
        limit = sync._max_mail_bytes()
        for batch in batches(uids):
            if self._past_deadline(tally):
                return False
            done = Tally()
            headers, stop = sync._readable(user, reader, folder, batch, tally)
            found = sync._match_batch(user, folder, scope.kept(headers), done)
            if wanted is not None:
                found = self._only(found, wanted)
            self._commit()
            tally.found_back += len(found)
            in_groups = list(groups(found[uid][0] for uid in sorted(found)))
            for number, group in enumerate(in_groups):
                if number and self._past_deadline(tally):
                    return False
                raw = sync._fetch(reader, group, limit)
                done = Tally()
                with sync._mails_locked(h.message_id for h in group):
                    with self.env.cr.savepoint():
                        sync._log_found(user, folder, {h.uid: found[h.uid] for h in group}, raw, done)
                        folder.write({cursor: group[-1].uid, "look_back_uidvalidity": folder.uidvalidity})
                    del raw
                    self._commit()
                tally.logged += done.logged
                tally.logged_back += done.logged
                tally.shortened += done.shortened
                tally.skipped += done.skipped
                tally.message_ids += done.message_ids
            folder.write(
                {cursor: stop - 1 if stop else max(batch), "look_back_uidvalidity": folder.uidvalidity}
            )
            self._commit()
            if stop:
                # Not read: looked at again from there at the next run (a problem of the run).
                tally.problems.append(errors.MailUnread(folder=folder.name, uid=stop))
                return False
        return True

    @api.model
    def _only(self, found, wanted):
        """``found`` (see ``_match_batch``) on the ``wanted`` records only: a look-back logs mail on
        the records it looked for, not again on others (whose mail the scan has seen)."""
        kept = {}
        for uid, (header, records, author) in found.items():
            on_wanted = {record: bcc for record, bcc in records.items() if record in wanted}
            if on_wanted:
                kept[uid] = (header, on_wanted, author)
        return kept

    @api.model
    def _commit(self):
        self.env["cats_mail_sync.sync"]._commit()

    @api.model
    def _past_deadline(self, tally):
        return bool(tally.deadline and time.monotonic() > tally.deadline)
