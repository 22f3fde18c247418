"""Jobs run the way queue_job's job runner runs them: an HTTP request to /queue_job/runjob, on this
test's Odoo HTTP server, handled by queue_job's own controller in a transaction of its own with
real commits. The data is the test's own, committed, then deleted."""

import logging
import uuid
from contextlib import contextmanager
from unittest.mock import patch

import requests

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import HOST, TransactionCase, new_test_user, tagged
from odoo.tools import config, mute_logger

from odoo.addons.cats_mail_sync.tests.common import allow_local_servers, make_mail
from odoo.addons.cats_mail_sync.tests.harness.dovecot import Dovecot

MAILBOXES = 2
PARAMS = ("cats_mail_sync.ca_file", "cats_mail_sync.allow_private_hosts", "cats_mail_sync.run_seconds")
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
class TestJobRunner(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = uuid.uuid4().hex[:8]
        cls.passwords = {
            f"runner{number}.{cls.token}@recruit.example.test": f"runner{number}-Secret-{cls.token}"
            for number in range(MAILBOXES)
        }
        cls.dovecot = Dovecot(cls.passwords).start()
        cls.addClassCleanup(cls.dovecot.stop)

    def setUp(self):
        super().setUp()
        self.cr_real = self.registry.cursor()
        self.addCleanup(self.cr_real.close)
        env = self.env_real = api.Environment(self.cr_real, SUPERUSER_ID, {})
        self.params_before = {key: env["ir.config_parameter"].get_param(key) for key in PARAMS}
        self.addCleanup(self.clean_up)
        allow_local_servers(env, self.dovecot.ca_file)
        self.candidate_address = f"carla.{self.token}@example.com"
        self.candidate = env["hr.candidate"].create(
            {"partner_name": "Carla Candidate", "email_from": self.candidate_address}
        )
        self.users = env["res.users"]
        for address, password in self.passwords.items():
            self.users |= new_test_user(
                env,
                login=address.split("@")[0],
                email=address,
                groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
                context={"no_reset_password": True},
            )
            self.users[-1].write(
                {
                    "mailbox_email": address,
                    "mailbox_login": address,
                    "mailbox_password": password,
                    "mailbox_imap_host": self.dovecot.host,
                    "mailbox_imap_port": self.dovecot.ssl_port,
                    "mailbox_imap_security": "ssl",
                }
            )
        self.commit()
        for user in self.users:
            user.action_mailbox_activate()
        self.commit()

    def commit(self):
        self.cr_real.commit()
        self.env_real.invalidate_all()

    def clean_up(self):
        self.cr_real.rollback()
        env = self.env_real
        env["queue.job"].search([("model_name", "=", "cats_mail_sync.sync")]).filtered(
            lambda job: job.args[0] in self.users.ids
        ).unlink()
        env["mail.message"].search([("message_id", "like", f"%.{self.token}@%")]).unlink()
        env["mail.mail"].search([("email_to", "like", f".{self.token}@")]).unlink()
        env["cats_mail_sync.run"].search([("user_id", "in", self.users.ids)]).unlink()
        self.candidate.unlink()
        partners = self.users.partner_id
        self.users.unlink()
        partners.unlink()
        for key, value in self.params_before.items():
            env["ir.config_parameter"].set_param(key, value or False)
        self.commit()

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
            self.dovecot.append(address, folder, make_mail(sender, to, message_id=message_id))
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
        return set(
            self.env_real["mail.message"]
            .search(
                [
                    ("model", "=", "hr.candidate"),
                    ("res_id", "=", self.candidate.id),
                    ("mailbox_user_id", "in", self.users.ids),
                ]
            )
            .mapped("message_id")
        )

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
