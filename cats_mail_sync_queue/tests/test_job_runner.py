"""Jobs run the way queue_job's job runner runs them: an HTTP request to /queue_job/runjob, on this
test's Odoo HTTP server, handled by queue_job's own controller in a transaction of its own with
real commits. The data is the test's own, committed, then deleted."""

import logging
from contextlib import contextmanager
from unittest.mock import patch

import requests

from odoo.modules.registry import Registry
from odoo.tests import HOST, tagged
from odoo.tools import config, mute_logger

from odoo.addons.cats_mail_sync.tests.common import CommittedMailboxCase, make_mail

MAILBOXES = 2
SYNC_LOGGER = "odoo.addons.cats_mail_sync.models.cats_mail_sync_sync"
# A failed job is logged by queue_job's controller and by Odoo's HTTP layer, as in production.
FAILED_JOB_LOGGERS = ("odoo.addons.queue_job.controllers.main", "odoo.http")


@contextmanager
def registries_unlocked():
    """Odoo's test runner holds the registries' lock while the tests run (ThreadedServer.run), and a
    request for a database that is not in test mode waits for it: the test thread, which owns it,
    lets it go while the job runner's request is served."""
    try:
        Registry._lock.release()
    except RuntimeError:  # not held (pytest-odoo)
        yield
        return
    try:
        yield
    finally:
        Registry._lock.acquire()


@tagged("post_install", "-at_install")
class TestJobRunner(CommittedMailboxCase):
    mailboxes = MAILBOXES
    login_prefix = "runner"
    params = (*CommittedMailboxCase.params, "cats_mail_sync.run_seconds")

    def forget(self, env):
        env["queue.job"].search([("model_name", "=", "cats_mail_sync.sync")]).filtered(
            lambda job: job.args[0] in self.users.ids
        ).unlink()

    def deliver(self, user, number):
        """A mail from the candidate in the Inbox, an answer in Sent, a stranger's mail; the two
        Message-IDs to be logged."""
        address, expected = user.mailbox_email, []
        for folder, sender, to, name in (
            ("INBOX", self.candidate_address, address, "cv"),
            ("Sent", address, self.candidate_address, "answer"),
            ("INBOX", f"stranger.{self.token}@elsewhere.example.net", address, "stray"),
        ):
            message_id = f"<{name}{number}.{self.token}@x>"
            self.imap.append(address, folder, make_mail(sender, to, message_id=message_id))
            if name != "stray":
                expected.append(message_id)
        return expected

    def run_jobs(self, users=None):
        """Queue a job per mailbox and run each as the job runner does; the jobs."""
        users = users or self.users
        for user in users:
            self.env_real["cats_mail_sync.sync"]._queue_sync(user)
        jobs = self.env_real["queue.job"].union(*map(self.pending, users))
        self.run_queued(jobs)
        return jobs

    def run_queued(self, jobs):
        """As queue_job's runner: each job marked enqueued and committed, then
        GET /queue_job/runjob?db=...&job_uuid=... on an Odoo HTTP server."""
        jobs.state = "enqueued"
        self.commit()
        for job in jobs:
            with registries_unlocked():
                response = requests.get(
                    f"http://{HOST}:{config['http_port']}/queue_job/runjob",
                    params={"db": self.cr_real.dbname, "job_uuid": job.uuid},
                    timeout=120,
                )
            self.assertIn(response.status_code, (200, 500))
        self.commit()  # a new snapshot, which sees what the jobs committed

    def pending(self, user):
        jobs = self.env_real["queue.job"].search(
            [("model_name", "=", "cats_mail_sync.sync"), ("state", "=", "pending")]
        )
        return jobs.filtered(lambda job: job.args == [user.id])

    def logged(self):
        """The Message-IDs logged on the candidate."""
        return set(super().logged())

    def test_jobs_log_the_mailboxes_mail_with_real_commits(self):
        expected = {mid for number, user in enumerate(self.users) for mid in self.deliver(user, number)}
        jobs = self.run_jobs()
        self.assertEqual(jobs.mapped("state"), ["done"] * MAILBOXES)
        self.assertEqual(self.logged(), expected)
        runs = self.env_real["cats_mail_sync.run"].search([("user_id", "in", self.users.ids)])
        self.assertEqual(
            (len(runs), sum(runs.mapped("logged")), runs.mapped("error")), (2, 4, [False, False])
        )
        self.assertEqual(self.users.mapped("mailbox_error"), [False, False])

    def test_an_unexpected_error_fails_the_job_and_is_a_problem_to_report(self):
        expected = {mid for number, user in enumerate(self.users) for mid in self.deliver(user, number)}
        logger_class = type(self.env_real["cats_mail_sync.logger"])
        with (
            patch.object(logger_class, "_log", side_effect=KeyError("a programming error")),
            mute_logger(*FAILED_JOB_LOGGERS),
        ):
            with self.assertLogs(SYNC_LOGGER, logging.WARNING) as first:
                jobs = self.run_jobs()
            with self.assertLogs(SYNC_LOGGER, logging.WARNING) as again:
                self.run_jobs()
        self.assertEqual(jobs.mapped("state"), ["failed"] * MAILBOXES)
        self.assertTrue(all("KeyError" in job.exc_info for job in jobs))
        self.assertIn("unexpected error (KeyError)", jobs[0].exc_message)
        tracebacks = [r for r in first.records if r.levelno == logging.ERROR and r.exc_info]
        self.assertEqual(len(tracebacks), MAILBOXES, "a traceback for the administrator, per mailbox")
        self.assertFalse([r for r in again.records if r.levelno >= logging.ERROR], "once, not at every run")
        for user in self.users:
            self.assertEqual(user.mailbox_state, "active")
            self.assertIn("Please report it to your administrator", user.mailbox_error)
            self.assertNotIn("Retrying since", user.mailbox_error)
        runs = self.env_real["cats_mail_sync.run"].search([("user_id", "in", self.users.ids)])
        self.assertEqual(runs.mapped("unexpected"), [True] * 2 * MAILBOXES)
        self.assertFalse(self.logged())

        # Once the fault is gone (the code corrected), the next jobs log everything: nothing lost.
        jobs = self.run_jobs()
        self.assertEqual(jobs.mapped("state"), ["done"] * MAILBOXES)
        self.assertEqual(self.logged(), expected)
        self.assertEqual(self.users.mapped("mailbox_error"), [False, False])

    def test_a_job_out_of_time_keeps_its_place_and_the_next_job_goes_on_at_once(self):
        anna = self.users[0]
        expected = set(self.deliver(anna, 0))
        self.env_real["ir.config_parameter"].set_param("cats_mail_sync.run_seconds", "0")
        job = self.run_jobs(anna)
        self.assertEqual(job.state, "done")
        self.assertFalse(self.logged())
        after = self.pending(anna)
        self.assertEqual(len(after), 1, "the rest is queued at once, not at the next scheduled run")

        self.env_real["ir.config_parameter"].set_param("cats_mail_sync.run_seconds", False)
        self.run_queued(after)
        self.assertEqual(after.state, "done")
        self.assertEqual(self.logged(), expected)
