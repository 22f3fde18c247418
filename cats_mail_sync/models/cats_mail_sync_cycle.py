import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta

from odoo import SUPERUSER_ID, api, fields, models
from odoo.tools import config

from .cats_mail_sync_sync import Tally, in_test_mode

_logger = logging.getLogger(__name__)

# The longest a scheduled run takes new mailboxes (cats_mail_sync.run_seconds overrides it): what is
# left goes to a run that starts at once, so one run never holds a cron worker for long.
RUN_SECONDS = 90
# Share of Odoo's time limit a run may spend starting mailboxes: the mailboxes under way then
# finish their batch, and the run records its outcome, well before Odoo stops it.
SHARE_OF_LIMIT = 0.75
# Mailboxes read at the same time (cats_mail_sync.concurrency; 1 reads them one after the other).
CONCURRENCY = 4
NOT_STARTED = object()  # what a mailbox's turn returns when the budget was spent before it


def time_limit(cron=True):
    """The seconds Odoo lets a scheduled run (``cron``) or a request run before it stops it; None
    for no limit.

    As Odoo reads its options: limit_time_real_cron, where -1 means limit_time_real; 0 means no limit
    with workers, and limit_time_real in the threaded server (which applies the cron option only when
    it is above 0). Queue jobs run as requests, under limit_time_real.
    """
    limit = config["limit_time_real_cron"] if cron else -1
    if limit is None or limit < 0 or (limit == 0 and not config["workers"]):
        limit = config["limit_time_real"]
    return limit if limit and limit > 0 else None


def cpu_limit():
    """The CPU seconds Odoo lets a worker process use for a unit of work (a request, or a pass over
    the scheduled actions), for all its threads together; None for no limit (the threaded server
    has none)."""
    limit = config["limit_time_cpu"]
    return limit if config["workers"] and limit and limit > 0 else None


@contextmanager
def own_environment(registry):
    """A superuser environment on a new cursor of ``registry``, for a thread of its own; committed
    at the end, and the caches' changes signalled to the other Odoo processes, as a request's."""
    with registry.manage_changes(), registry.cursor() as cr:
        # What api.Environment does on a new cursor, with the registry at hand: looking it up by
        # name would wait for the lock of all registries, which a thread loading a registry (or
        # Odoo's test runner) holds while it waits for this one.
        cr.transaction = api.Transaction(registry)
        yield api.Environment(cr, SUPERUSER_ID, {})


@dataclass
class Budget:
    """When a run stops starting mailboxes: at ``deadline`` (a ``time.monotonic()``), or once
    ``cpu_deadline`` (a ``time.process_time()``, None for none) is reached."""

    deadline: float
    cpu_deadline: float | None = None

    def spent(self):
        if time.monotonic() >= self.deadline:
            return True
        return self.cpu_deadline is not None and time.process_time() >= self.cpu_deadline


class CatsMailSyncCycle(models.AbstractModel):
    """The scheduled run: every mailbox due, longest synchronized ago first, several at a time, within
    Odoo's time limit; what is left is for a run that starts at once."""

    _inherit = "cats_mail_sync.sync"

    @api.model
    def _cron(self):
        """Scheduled action: log the new mail of every active mailbox due."""
        self.env["cats_mail_sync.setup"]._forget_old_passwords()
        self.env["cats_mail_sync.token"]._forget_unused()
        self.env["cats_mail_sync.look_back"]._gc()
        deadline = time.monotonic() + self._run_seconds()
        users = self._due_mailboxes()
        # Nothing of this transaction may hold a row that a mailbox's own transaction writes.
        self._commit()
        self._sync_due(users, deadline)

    @api.model
    def _run_seconds(self, cron=True):
        """The run's time budget: cats_mail_sync.run_seconds if set, else three quarters of Odoo's time
        limit (see ``time_limit``), at most RUN_SECONDS."""
        seconds = self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.run_seconds")
        if seconds:
            return float(seconds)
        limit = time_limit(cron)
        return min(RUN_SECONDS, limit * SHARE_OF_LIMIT) if limit else RUN_SECONDS

    @api.model
    def _concurrency(self):
        """Mailboxes read at the same time: cats_mail_sync.concurrency (default 4), at most half of
        Odoo's database connections per process (db_maxconn), each thread holding one."""
        value = self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.concurrency")
        try:
            wanted = int(value) if value else CONCURRENCY
        except ValueError:
            _logger.warning("cats_mail_sync.concurrency %r is not a number: %s used", value, CONCURRENCY)
            wanted = CONCURRENCY
        return max(1, min(wanted, config["db_maxconn"] // 2))

    @api.model
    def _due_mailboxes(self):
        """Active mailboxes not waiting for a retry, synchronized longest ago first; in a run that
        continues a cycle, only those not synchronized since the cycle began."""
        now = fields.Datetime.now()
        domain = [
            ("mailbox_state", "=", "active"),
            "|",
            ("mailbox_retry_at", "=", False),
            ("mailbox_retry_at", "<=", now),
        ]
        cron = self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync").sudo()
        if cron.nextcall > now:
            # Not the scheduled run (Odoo moves the next call on after each run): a run asked for
            # when the cycle's time ran out, or started by hand. It finishes the cycle that began
            # one interval before the next call, rather than start the mailboxes over and over.
            began = cron.nextcall - relativedelta(**{cron.interval_type: cron.interval_number})
            # A mailbox with a look-back to do (a candidate just made, say) is taken again.
            waiting = self.env["cats_mail_sync.look_back"]._users_waiting()
            domain += [
                "|",
                "|",
                ("mailbox_last_sync_at", "=", False),
                ("mailbox_last_sync_at", "<=", began),
                ("id", "in", waiting),
            ]
        return self.env["res.users"].sudo().search(domain, order="mailbox_last_sync_at asc nulls first, id")

    @api.model
    def _sync_due(self, users, deadline):
        """Sync ``users``' mailboxes in their order; none starts after ``deadline``, nor once the
        threads of the run have used three quarters of Odoo's CPU limit (see ``cpu_limit``).

        Each mailbox is read in a transaction of its own, by up to ``_concurrency()`` threads. Inside
        tests, whose transaction is never committed (so no other transaction would see their data),
        they are synced one after the other in the caller's. When the budget runs out, a run is asked
        for at once; it takes the mailboxes left first, as they were synchronized longest ago.
        """
        cron = self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")
        cpu = cpu_limit()
        budget = Budget(deadline, cpu and time.process_time() + cpu * SHARE_OF_LIMIT)
        total, done = len(users), 0
        if in_test_mode():
            results = (self._sync_in_turn(user, budget) for user in users)
        else:
            results = self._sync_concurrently(users.ids, budget)
        for result in results:
            if result is NOT_STARTED:
                continue
            done += 1
            # Committed with the mailbox: a run that Odoo stops has still made progress.
            cron._notify_progress(done=done, remaining=total - done)
            self._commit()
        if done < total or set(users.ids) & set(self.env["cats_mail_sync.look_back"]._users_waiting()):
            # The rest (read longest ago, so first next time), or a look-back the time budget
            # cut short, is for a run that starts now.
            cron._trigger()
        # Nothing remaining for this run: told there is, Odoo would call it again at once, within the
        # same time limit; the trigger above starts the next run under a limit of its own.
        cron._notify_progress(done=done, remaining=0)

    @api.model
    def _sync_in_turn(self, user, budget):
        """One mailbox in the caller's transaction."""
        if budget.spent():
            return NOT_STARTED
        return self._sync(user, budget.deadline)

    @api.model
    def _sync_concurrently(self, user_ids, budget):
        """Sync the mailboxes of ``user_ids``, each in its own thread and transaction, taken in order
        by ``_concurrency()`` threads; yields each result as it comes."""
        dbname = self.env.cr.dbname

        def start_thread():
            # As Odoo's own request and cron threads: the log says which database a line is about.
            thread = threading.current_thread()
            thread.dbname, thread.uid = dbname, SUPERUSER_ID

        executor = ThreadPoolExecutor(
            self._concurrency(), thread_name_prefix="cats_mail_sync", initializer=start_thread
        )
        try:
            futures = [executor.submit(self._sync_in_own_transaction, uid, budget) for uid in user_ids]
            for future in as_completed(futures):
                yield future.result()
            # The threads' transactions changed the mailboxes: what this one read of them is stale.
            self.env.invalidate_all()
        finally:
            # Should the run itself fail, the mailboxes not started yet are left for the next one.
            executor.shutdown(cancel_futures=True)

    @api.model
    def _sync_in_own_transaction(self, user_id, budget):
        """One mailbox in a cursor of its own (a worker thread's); trouble that ``_sync`` itself could
        not record is recorded here, in a fresh transaction."""
        if budget.spent():
            return NOT_STARTED
        started_at, started = fields.Datetime.now(), time.monotonic()
        try:
            with own_environment(self.pool) as env:
                sync = self.with_env(env)
                return sync._sync(env["res.users"].browse(user_id), budget.deadline)
        except Exception as error:  # noqa: BLE001 - one mailbox's trouble never stops the others
            try:
                with own_environment(self.pool) as env:
                    sync = self.with_env(env)
                    user, tally = env["res.users"].browse(user_id).sudo(), Tally()
                    sync._failed(user, error, tally)
                    sync._record(user, tally, started_at, time.monotonic() - started)
            except Exception:  # the database itself is out of reach
                _logger.exception("Mailbox of user %s: %r, and the run could not be recorded", user_id, error)
            return None
