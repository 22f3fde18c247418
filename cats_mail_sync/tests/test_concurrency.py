"""Mailboxes read at the same time, each in its own thread and transaction: as in production, with
real commits, in data of the test's own (committed, then deleted)."""

import threading
import time
from contextlib import contextmanager, suppress
from unittest.mock import patch

from odoo.tests import BaseCase, tagged
from odoo.tools import config

from ..models import cats_mail_sync_cycle as cycle
from .common import CommittedMailboxCase, as_in_production, make_mail

MAILBOXES = 4


@tagged("post_install", "-at_install")
class TestConcurrentRun(CommittedMailboxCase):
    """The test's own transaction is left alone: what it holds, the threads' transactions could not see."""

    mailboxes = MAILBOXES
    login_prefix = "pool"
    params = (*CommittedMailboxCase.params, "cats_mail_sync.concurrency", "cats_mail_sync.run_seconds")

    def setUp(self):
        super().setUp()
        self.expected = self.deliver()

    def remember(self, env):
        self.triggers_before = env["ir.cron.trigger"].search([]).ids

    def forget(self, env):
        env["ir.cron.trigger"].search([("id", "not in", self.triggers_before)]).unlink()

    def deliver(self):
        """In each Inbox: a mail of its own from the candidate, one from a stranger, and a mail the
        candidate sent to all the recruiters at once. The Message-IDs expected on the candidate."""
        shared = f"<shared.{self.token}@x>"
        everybody = list(self.passwords)
        for number, address in enumerate(self.passwords):
            own = make_mail(self.candidate_address, address, message_id=f"<own{number}.{self.token}@x>")
            stray = make_mail(
                f"stranger.{self.token}@elsewhere.example.net",
                address,
                message_id=f"<stray{number}.{self.token}@x>",
            )
            for mail in (own, stray, make_mail(self.candidate_address, everybody, message_id=shared)):
                self.imap.append(address, "INBOX", mail)
        return {f"<own{number}.{self.token}@x>": 1 for number in range(MAILBOXES)} | {shared: 1}

    def run_due(self, concurrency, seconds=3600):
        """The scheduled run's mailbox part, with ``concurrency`` threads (None: as many as the run
        finds it needs) and a budget of ``seconds``."""
        self.env_real["ir.config_parameter"].sudo().set_param(
            "cats_mail_sync.concurrency", concurrency and str(concurrency)
        )
        self.commit()
        with as_in_production():
            self.env_real["cats_mail_sync.sync"]._sync_due(self.users, time.monotonic() + seconds)
        self.commit()

    @contextmanager
    def watched(self, together=1, first_alone=False):
        """Record each mailbox's sync: its cursor and thread, and the most under way at once. With
        ``together``, none starts reading before that many have started (a barrier); but the first
        one, with ``first_alone``."""
        sync_class = type(self.env_real["cats_mail_sync.sync"])
        sync = sync_class._sync
        barrier = threading.Barrier(together, timeout=60)
        lock, seen = threading.Lock(), {"calls": [], "now": 0, "most": 0}

        def watched_sync(model, user, deadline=None):
            with lock:
                seen["calls"].append((user.id, model.env.cr, threading.get_ident()))
                seen["now"] += 1
                seen["most"] = max(seen["most"], seen["now"])
                alone = first_alone and len(seen["calls"]) == 1
            try:
                if together > 1 and not alone:
                    barrier.wait()
                return sync(model, user, deadline)
            finally:
                with lock:
                    seen["now"] -= 1

        with patch.object(sync_class, "_sync", watched_sync):
            yield seen

    def runs(self):
        return self.env_real["cats_mail_sync.run"].search([("user_id", "in", self.users.ids)])

    def test_mailboxes_are_read_at_the_same_time_each_in_its_own_transaction(self):
        with self.watched(together=MAILBOXES) as seen:
            self.run_due(concurrency=MAILBOXES)
        self.assertEqual(seen["most"], MAILBOXES)
        users, cursors, threads = zip(*seen["calls"], strict=True)
        self.assertEqual(sorted(users), sorted(self.users.ids))
        self.assertEqual(len(set(map(id, cursors))), MAILBOXES, "a cursor of its own each")
        self.assertNotIn(self.cr_real, cursors)
        self.assertEqual(len(set(threads)), MAILBOXES)
        self.assertNotIn(threading.get_ident(), threads)
        self.assertEqual(self.logged(), self.expected, "each mail once, none from the stranger")
        runs = self.runs()
        self.assertEqual(runs.user_id, self.users)
        self.assertEqual(sum(runs.mapped("looked_at")), 3 * MAILBOXES)
        self.assertEqual(sum(runs.mapped("logged")), MAILBOXES + 1)
        self.assertFalse(any(runs.mapped("error")))
        self.assertEqual(set(self.users.mapped("mailbox_state")), {"active"})

    def test_without_a_setting_the_run_reads_as_many_at_once_as_its_pace_asks(self):
        """With cats_mail_sync.concurrency unset, the run starts with CONCURRENCY mailboxes, measures
        what each takes, and widens to what ``width`` finds the rest needs."""
        asked = []

        def paced(left, seconds, cpu_seconds, time_left, cap):
            asked.append((left, seconds, cpu_seconds, time_left, cap))
            return MAILBOXES - 1

        with (
            patch.object(cycle, "CONCURRENCY", 1),
            patch.object(cycle, "width", paced),
            self.watched(together=MAILBOXES - 1, first_alone=True) as seen,
        ):
            self.run_due(concurrency=None)
        self.assertEqual(seen["most"], MAILBOXES - 1, "one, then three at once")
        left, seconds, cpu_seconds, time_left, cap = asked[0]
        self.assertEqual(left, MAILBOXES - 1, "asked once the first mailbox was read")
        self.assertGreater(seconds, cpu_seconds)
        self.assertGreater(cpu_seconds, 0)
        self.assertLess(time_left, 3600)
        self.assertTrue(1 <= cap <= config["db_maxconn"] // 2, "a connection each, half of the pool at most")
        self.assertEqual(self.logged(), self.expected, "each mail once, none from the stranger")

    def test_two_mailboxes_logging_the_same_mail_at_once_take_turns_and_log_no_error(self):
        """The mail the candidate sent to every recruiter reaches the logger of each mailbox at the same
        moment: without turns, two would insert it on the candidate and one fail on the unique index
        (an ERROR in Odoo's log for a race that is expected)."""
        logger_class = type(self.env_real["cats_mail_sync.logger"])
        log = logger_class._log
        barrier = threading.Barrier(2, timeout=3)

        def at_the_same_moment(model, user, mails):
            # The first two loggers meet here, unless one waits for the other (the wait then times out).
            with suppress(threading.BrokenBarrierError):
                barrier.wait()
            return log(model, user, mails)

        with (
            patch.object(logger_class, "_log", at_the_same_moment),
            self.assertNoLogs("odoo.sql_db", "ERROR"),
        ):
            self.run_due(concurrency=MAILBOXES)
        self.assertEqual(self.logged(), self.expected, "each mail once")
        self.assertFalse(any(self.runs().mapped("error")))

    def test_one_at_a_time_gives_the_same_result(self):
        with self.watched() as seen:
            self.run_due(concurrency=1)
        self.assertEqual(seen["most"], 1)
        users, cursors, _threads = zip(*seen["calls"], strict=True)
        self.assertEqual(list(users), self.users.ids, "in the order given")
        self.assertNotIn(self.cr_real, cursors)
        self.assertEqual(self.logged(), self.expected)
        self.assertEqual(sum(self.runs().mapped("logged")), MAILBOXES + 1)

    def test_a_mailbox_whose_run_breaks_is_recorded_and_the_others_go_on(self):
        broken = self.users[0]
        sync_class = type(self.env_real["cats_mail_sync.sync"])
        sync = sync_class._sync

        def breaks(model, user, deadline=None):
            if user.id == broken.id:
                raise RuntimeError("the database went away")
            return sync(model, user, deadline)

        with patch.object(sync_class, "_sync", breaks):
            self.run_due(concurrency=MAILBOXES)
        run = self.runs().filtered(lambda run: run.user_id == broken)
        self.assertEqual(len(run), 1)
        self.assertIn("RuntimeError: the database went away", run.error)
        self.assertEqual((broken.mailbox_state, broken.mailbox_failures), ("active", 1))
        self.assertTrue(broken.mailbox_retry_at, "retried later, as any interrupted run")
        logged = self.logged()
        self.assertEqual(
            {key: logged.get(key) for key in self.expected if "own0." not in key},
            {key: 1 for key in self.expected if "own0." not in key},
        )
        self.assertNotIn(f"<own0.{self.token}@x>", logged)

    def test_a_run_out_of_time_starts_no_mailbox_and_asks_for_a_run_at_once(self):
        cron = self.env_real.ref("cats_mail_sync.ir_cron_cats_mail_sync")
        with self.watched() as seen:
            self.run_due(concurrency=MAILBOXES, seconds=0)
        self.assertFalse(seen["calls"])
        triggers = self.env_real["ir.cron.trigger"].search([("id", "not in", self.triggers_before)])
        self.assertEqual(triggers.cron_id, cron)
        self.assertFalse(self.runs())


class TestWidth(BaseCase):
    """How many mailboxes a run reads at once, from what it measured (seconds per mailbox)."""

    def test_ten_thousand_mailboxes_behind_latency_take_as_many_threads_as_one_core_serves(self):
        # 0.45 s a mailbox (50 ms round trips), 15 ms of it CPU, 90 s left: 67 threads would be
        # needed; one core serves 22 of them (three quarters of it), the database 32.
        self.assertEqual(cycle.width(10_000, 0.45, 0.015, 90, 32), 22)
        self.assertEqual(cycle.width(10_000, 0.45, 0.005, 90, 32), 32, "the database's share is the cap")

    def test_a_few_mailboxes_take_the_default(self):
        self.assertEqual(cycle.width(100, 0.45, 0.015, 90, 32), cycle.CONCURRENCY)
        self.assertEqual(cycle.width(1, 0.05, 0.01, 90, 32), cycle.CONCURRENCY)
        self.assertEqual(cycle.width(100, 0.45, 0.015, 90, 2), 2, "never above the cap")

    def test_the_time_left_decides(self):
        # 1,000 mailboxes of 0.45 s: 7 threads to be done in three quarters of 90 s, 14 of 45 s.
        self.assertEqual(cycle.width(1000, 0.45, 0.001, 90, 32), 7)
        self.assertEqual(cycle.width(1000, 0.45, 0.001, 45, 32), 14)
        self.assertEqual(cycle.width(1000, 0.45, 0.001, 0, 32), 32, "out of time: all it may")
