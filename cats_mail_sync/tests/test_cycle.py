"""The scheduled run's cycle: oldest first, a time budget from Odoo's limit, continuation, progress."""

import math
from contextlib import contextmanager, suppress
from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.tests import tagged
from odoo.tools import config

from .common import MailboxCase, make_mail
from .harness.dovecot import Dovecot

CANDIDATE = "carla.candidate@example.com"
RECRUITERS = {f"r{number}@recruit.example.test": f"r{number}-Secret-{number}" for number in range(5)}


class Killed(BaseException):
    """The worker is killed: nothing after this runs."""


@tagged("post_install", "-at_install")
class TestCycle(MailboxCase):
    """Five recruiters with a mailbox each; every mailbox's sync takes one (frozen clock) second."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.five = Dovecot(RECRUITERS).start()
        cls.addClassCleanup(cls.five.stop)
        cls.recruiters = cls.env["res.users"]
        for number, (address, password) in enumerate(RECRUITERS.items()):
            cls.recruiters |= cls.recruiter(
                f"r{number}", address, mailbox_imap_port=cls.five.ssl_port, mailbox_password=password
            )
        cls.cron = cls.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")

    def setUp(self):
        super().setUp()
        for address in RECRUITERS:
            with self.five.client(address) as client:
                client.select_folder("INBOX")
                client.delete_messages(client.search(["ALL"]))
                client.expunge()
        self.start = fields.Datetime.now()
        with freeze_time(self.start - timedelta(minutes=5)):
            for user in self.recruiters:
                user.action_mailbox_activate()
        # The scheduled time has come (as when Odoo's cron worker starts the run).
        self.cron.nextcall = self.start
        self.now = self.start + timedelta(minutes=1)  # where the next runs' clock starts
        self.sync_class = type(self.env["cats_mail_sync.sync"])

    def triggers(self):
        return self.env["ir.cron.trigger"].search_count([("cron_id", "=", self.cron.id)])

    @contextmanager
    def clock(self, mailboxes_per_run=None, at=None):
        """Runs whose time budget is spent after ``mailboxes_per_run`` mailboxes (None: never), from
        ``at`` (default: where the last runs' clock stopped).

        Yields ``run()``: one scheduled run, a minute after the last; it returns the mailboxes it
        synced, in order.
        """
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("cats_mail_sync.run_seconds", str(mailboxes_per_run or 10_000))
        sync = self.sync_class._sync
        synced = []
        with freeze_time(at or self.now) as frozen:

            def one_second_each(model, user, deadline=None):
                synced.append(user)
                try:
                    return sync(model, user, deadline)
                finally:
                    frozen.tick(timedelta(seconds=1))

            def run(**context):
                synced.clear()
                with patch.object(self.sync_class, "_sync", one_second_each):
                    self.env["cats_mail_sync.sync"].with_context(**context)._cron()
                frozen.tick(timedelta(minutes=1))
                return self.env["res.users"].concat(*synced)

            yield run
            self.now = fields.Datetime.now()

    def deliver_to_each(self, tag):
        """A mail from the candidate in every recruiter's Inbox; their Message-IDs."""
        ids = {}
        for user in self.recruiters:
            ids[user] = f"<{tag}-{user.login}@x>"
            mail = make_mail(CANDIDATE, user.mailbox_login, message_id=ids[user])
            self.five.append(user.mailbox_login, "INBOX", mail)
        return ids

    def test_the_budget_follows_odoos_time_limit_for_scheduled_runs(self):
        cases = [
            # limit_time_real_cron, limit_time_real, workers -> seconds of the budget
            ({"limit_time_real_cron": -1, "limit_time_real": 120, "workers": 2}, 90),
            ({"limit_time_real_cron": -1, "limit_time_real": 60, "workers": 2}, 45),
            ({"limit_time_real_cron": 40, "limit_time_real": 120, "workers": 2}, 30),
            ({"limit_time_real_cron": 0, "limit_time_real": 120, "workers": 2}, 90),  # no limit
            ({"limit_time_real_cron": 0, "limit_time_real": 20, "workers": 0}, 15),  # threaded server
            ({"limit_time_real_cron": -1, "limit_time_real": 0, "workers": 0}, 90),  # no limit
        ]
        sync = self.env["cats_mail_sync.sync"]
        for options, seconds in cases:
            with self.subTest(**options), patch.dict(config.options, options):
                self.assertEqual(sync._run_seconds(), seconds)
        with patch.dict(config.options, {"limit_time_real_cron": 600, "limit_time_real": 40}):
            self.assertEqual(sync._run_seconds(cron=False), 30, "queue jobs run as requests")
            self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.run_seconds", "200")
            self.assertEqual(sync._run_seconds(), 200, "the system parameter wins")

    def test_a_run_also_stops_before_odoos_cpu_limit(self):
        used, sync = [0.0], self.sync_class._sync

        def one_cpu_second_each(model, user, deadline=None):
            used[0] += 1
            return sync(model, user, deadline)

        triggers = self.triggers()
        # Workers: Odoo limits the CPU time of a pass over the scheduled actions, all threads together.
        with (
            patch.dict(config.options, {"workers": 2, "limit_time_cpu": 4}),
            patch("time.process_time", lambda: used[0]),
            patch.object(self.sync_class, "_sync", one_cpu_second_each),
        ):
            self.run_cron()
        self.assertEqual(used[0], 3, "no mailbox starts past three quarters of the 4 CPU seconds")
        self.assertEqual(self.triggers(), triggers + 1)

    def test_a_run_out_of_time_says_its_progress_and_asks_for_the_rest(self):
        self.deliver_to_each("progress")
        with self.clock(mailboxes_per_run=2) as run:
            _cron, progress = self.cron._add_progress()
            triggers = self.triggers()
            self.assertEqual(len(run(ir_cron_progress_id=progress.id, cron_id=self.cron.id)), 2)
        # Odoo reads "nothing remaining" as done with this run; the trigger starts the next at once,
        # under a time limit of its own.
        self.assertEqual((progress.done, progress.remaining), (2, 0))
        self.assertEqual(self.triggers(), triggers + 1)

        with self.clock() as run:
            _cron, progress = self.cron._add_progress()
            triggers = self.triggers()
            self.assertEqual(len(run(ir_cron_progress_id=progress.id, cron_id=self.cron.id)), 5)
        self.assertEqual((progress.done, progress.remaining), (5, 0))
        self.assertEqual(self.triggers(), triggers, "a run that did everything asks for none")

    def test_runs_interrupted_after_any_mailbox_sync_every_mailbox_and_the_waiting_ones_first(self):
        for per_run in range(1, len(self.recruiters)):
            with self.subTest(mailboxes_per_run=per_run):
                ids = self.deliver_to_each(f"budget{per_run}")
                waiting = self.recruiters.sorted(lambda user: (user.mailbox_last_sync_at, user.id))
                synced = self.env["res.users"]
                with self.clock(mailboxes_per_run=per_run) as run:
                    for _number in range(math.ceil(len(self.recruiters) / per_run)):
                        triggers = self.triggers()
                        this_run = run()
                        self.assertEqual(len(this_run), per_run)
                        self.assertEqual(self.triggers(), triggers + 1, "the rest is asked for at once")
                        # The mailboxes left by the runs before come first, in the order they waited.
                        left = waiting[len(synced) : len(synced) + per_run]
                        self.assertEqual(this_run[: len(left)], left)
                        synced |= this_run
                self.assertEqual(synced, self.recruiters, "no mailbox starves")
                for user, message_id in ids.items():
                    self.assertEqual(len(self.logged(self.candidate, message_id)), 1, user.login)

    def test_a_run_killed_midway_is_continued_with_the_mailboxes_it_did_not_reach(self):
        ids = self.deliver_to_each("killed")

        def killed_after_two(model, user, deadline=None):
            if len(reached) == 2:
                raise Killed
            reached.append(user)
            return sync(model, user, deadline)

        reached, sync = [], self.sync_class._sync
        # Not assertRaises, which would roll back what the mailboxes reached had committed.
        with (
            freeze_time(self.now),
            patch.object(self.sync_class, "_sync", killed_after_two),
            suppress(Killed),
        ):
            self.run_cron()
        self.assertEqual(len(reached), 2)
        with self.clock() as run:
            this_run = run()
        self.assertEqual(this_run[:3], self.recruiters - self.env["res.users"].concat(*reached))
        for message_id in ids.values():
            self.assertEqual(len(self.logged(self.candidate, message_id)), 1)

    def test_a_run_that_continues_the_cycle_takes_only_the_mailboxes_not_synced_in_it(self):
        with self.clock(mailboxes_per_run=2) as run:
            first = run()
            # Odoo moves the next call on once the run is over: the next run is the continuation.
            self.cron.nextcall = self.start + timedelta(minutes=10)
            second, third = run(), run()
            triggers = self.triggers()
            self.assertFalse(run(), "the cycle is complete: the next one starts at its time")
            self.assertEqual(self.triggers(), triggers)
        self.assertEqual(first | second | third, self.recruiters)
        self.assertEqual(len(third), 1)
        with self.clock(at=self.start + timedelta(minutes=10)) as run:
            self.assertEqual(run()[:2], first, "a new cycle starts with the longest waiting")
