import logging
import math
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
from dateutil.relativedelta import relativedelta

from odoo import SUPERUSER_ID, api, fields, models
from odoo.tools import config

from .. import series
from ..mailbox_client.reader import GROUP_BYTES
from .cats_mail_sync_sync import Tally

_logger = logging.getLogger(__name__)

# The longest a scheduled run takes new mailboxes (cats_mail_sync.run_seconds overrides it): what is
# left goes to a run that starts at once, so one run never holds a cron worker for long.
RUN_SECONDS = 90
# Share of Odoo's time limit a run may spend starting mailboxes: the mailboxes under way then
# finish their batch, and the run records its outcome, well before Odoo stops it.
SHARE_OF_LIMIT = 0.75
# Mailboxes read at the same time, at the least (cats_mail_sync.concurrency sets a number instead; 1
# reads them one after the other). A run takes more when the mailboxes due need it (see ``width``).
CONCURRENCY = 4
# A run sized for its mailboxes plans to be done with them in this share of its time left.
PLANNED_SHARE = 0.75
# The share of one core the run's threads may use together (they share Python's interpreter lock):
# beyond it, more threads only wait for each other.
CPU_SHARE = 0.75
# Memory a thread may hold at once, as a multiple of the largest mail it reads whole (or of a group
# of mails): the raw bytes, Odoo's parsed copy and the attachments it writes.
MEMORY_PER_MAIL = 3
# A run says how far it got at most this often (a write and a commit).
PROGRESS_SECONDS = 5
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


def memory_left():
    """Bytes this process may still take: up to Odoo's soft memory limit with workers (past it, a
    worker is recycled), else half of the memory the machine has available."""
    if config["workers"] and config["limit_memory_soft"]:
        return max(0, config["limit_memory_soft"] - psutil.Process().memory_info().rss)
    return psutil.virtual_memory().available // 2


def width(left, seconds, cpu_seconds, time_left, cap):
    """How many of ``left`` mailboxes to read at the same time, each taking ``seconds`` (of which
    ``cpu_seconds`` of CPU), to be done in PLANNED_SHARE of ``time_left`` seconds: CONCURRENCY, or
    more as long as they keep no more than CPU_SHARE of a core busy; never above ``cap``."""
    needed = math.ceil(left * seconds / max(time_left * PLANNED_SHARE, 1e-3))
    if cpu_seconds > 0:
        needed = min(needed, int(CPU_SHARE * seconds / cpu_seconds))
    return max(1, min(cap, max(CONCURRENCY, needed)))


class Pace:
    """What the mailboxes of a run took so far, from their threads: ``width`` of what is left."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count, self.seconds, self.cpu_seconds, self.widest = 0, 0.0, 0.0, 0

    def add(self, seconds, cpu_seconds):
        with self._lock:
            self.count += 1
            self.seconds += seconds
            self.cpu_seconds += cpu_seconds

    def width(self, left, budget, cap):
        """The mailboxes to read at once now (CONCURRENCY until one was measured)."""
        with self._lock:
            count, seconds, cpu_seconds = self.count, self.seconds, self.cpu_seconds
        found = (
            width(left, seconds / count, cpu_seconds / count, budget.deadline - time.monotonic(), cap)
            if count
            else min(CONCURRENCY, cap)
        )
        self.widest = max(self.widest, found)
        return found

    def __str__(self):
        if not self.count:
            return "no mailbox read"
        return (
            f"{self.count} mailboxes, {1000 * self.seconds / self.count:.0f} ms each, "
            f"{1000 * self.cpu_seconds / self.count:.1f} ms of CPU"
        )


@contextmanager
def own_environment(registry):
    """A superuser environment on a new cursor of ``registry``, for a thread of its own; committed
    at the end, and the caches' changes signalled to the other Odoo processes, as a request's."""
    try:
        with registry.cursor() as cr:
            # What api.Environment does on a new cursor, with the registry at hand: looking it up
            # by name would wait for the lock of all registries, which a thread loading a registry
            # (or Odoo's test runner) holds while it waits for this one.
            cr.transaction = series.Transaction(registry)
            yield api.Environment(cr, SUPERUSER_ID, {})
    except Exception:
        registry.reset_changes()
        raise
    registry.signal_changes()


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
        """Mailboxes read at the same time: ``(fixed, cap)``. ``fixed`` is cats_mail_sync.concurrency
        when set (else None: the run sizes itself, see ``width``); ``cap`` is the most the server can
        take: half of Odoo's database connections per process (db_maxconn, each thread holding one),
        and the threads that the memory left holds, each reading its largest mail."""
        value = self.env["ir.config_parameter"].sudo().get_param("cats_mail_sync.concurrency")
        fixed = None
        if value:
            try:
                fixed = max(1, int(value))
            except ValueError:
                _logger.warning("cats_mail_sync.concurrency %r is not a number: the run sizes itself", value)
        per_thread = MEMORY_PER_MAIL * max(self._max_mail_bytes(), GROUP_BYTES)
        cap = max(1, min(config["db_maxconn"] // 2, memory_left() // per_thread))
        return fixed, cap

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
            # A next call moved further off than one interval (by hand) leaves no cycle to finish.
            unfinished = [("mailbox_last_sync_at", "<=", began)] if began <= now else []
            # A mailbox with a look-back to do (a candidate just made, say) is taken again, and
            # one the listener heard new mail in (see cats_mail_sync_listener.py).
            waiting = self.env["cats_mail_sync.look_back"]._users_waiting()
            due = [
                ("mailbox_last_sync_at", "=", False),
                *unfinished,
                ("id", "in", waiting),
                ("mailbox_new_mail_at", "!=", False),
            ]
            domain += ["|"] * (len(due) - 1) + due
        return self.env["res.users"].sudo().search(domain, order="mailbox_last_sync_at asc nulls first, id")

    @api.model
    def _sync_due(self, users, deadline):
        """Sync ``users``' mailboxes in their order; none starts after ``deadline``, nor once the
        threads of the run have used three quarters of Odoo's CPU limit (see ``cpu_limit``).

        Each mailbox is read in a transaction of its own, by several threads (see
        ``_sync_concurrently``). Inside tests, whose transaction is never committed (so no other
        transaction would see their data), they are synced one after the other in the caller's. When
        the budget runs out, a run is asked for at once; it takes the mailboxes left first, as they
        were synchronized longest ago.
        """
        cron = self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")
        cpu = cpu_limit()
        budget = Budget(deadline, cpu and time.process_time() + cpu * SHARE_OF_LIMIT)
        total, done = len(users), 0
        if series.in_test_mode():
            results = (self._sync_in_turn(user, budget) for user in users)
        else:
            results = self._sync_concurrently(users.ids, budget)
        said = time.monotonic()
        for result in results:
            if result is NOT_STARTED:
                continue
            done += 1
            if time.monotonic() - said >= PROGRESS_SECONDS:
                # Each mailbox is committed in its own transaction; this says how far the run got,
                # so that Odoo counts a run it stops as one that made progress.
                series.note_progress(cron, done, total - done)
                self._commit()
                said = time.monotonic()
        if done < total or set(users.ids) & set(self.env["cats_mail_sync.look_back"]._users_waiting()):
            # The rest (read longest ago, so first next time), or a look-back the time budget
            # cut short, is for a run that starts now.
            cron._trigger()
        # Nothing remaining for this run: told there is, Odoo would call it again at once, within the
        # same time limit; the trigger above starts the next run under a limit of its own.
        series.note_progress(cron, done, 0)

    @api.model
    def _sync_in_turn(self, user, budget):
        """One mailbox in the caller's transaction."""
        if budget.spent():
            return NOT_STARTED
        return self._sync(user, budget.deadline)

    @api.model
    def _sync_concurrently(self, user_ids, budget):
        """Sync the mailboxes of ``user_ids``, each in its own thread and transaction, taken in
        order; yields each result as it comes.

        As many at a time as ``width`` says from what the run measures (the seconds and the CPU
        seconds a mailbox takes, the mailboxes left, the time left), between CONCURRENCY and the
        cap of ``_concurrency``; a fixed number when cats_mail_sync.concurrency is set.
        """
        dbname = self.env.cr.dbname
        fixed, cap = self._concurrency()
        cap = min(fixed, cap) if fixed else cap
        pace = Pace()

        def start_thread():
            # As Odoo's own request and cron threads: the log says which database a line is about.
            thread = threading.current_thread()
            thread.dbname, thread.uid = dbname, SUPERUSER_ID

        def run(user_id):
            started, cpu = time.monotonic(), time.thread_time()
            try:
                return self._sync_in_own_transaction(user_id, budget)
            finally:
                pace.add(time.monotonic() - started, time.thread_time() - cpu)

        executor = ThreadPoolExecutor(cap, thread_name_prefix="cats_mail_sync", initializer=start_thread)
        waiting, running = list(reversed(user_ids)), set()
        try:
            while waiting or running:
                wanted = cap if fixed else pace.width(len(waiting) + len(running), budget, cap)
                while waiting and len(running) < wanted:
                    running.add(executor.submit(run, waiting.pop()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
            # The threads' transactions changed the mailboxes: what this one read of them is stale.
            self.env.invalidate_all()
        finally:
            # Should the run itself fail, the mailboxes not started yet are left for the next one.
            executor.shutdown(cancel_futures=True)
        if not fixed:
            _logger.info("Mailboxes read %s at a time at most (%s)", pace.widest, pace)

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
