from odoo.tests import tagged

from odoo.addons.cats_mail_sync.tests.common import ANNA, MailboxCase, make_mail
from odoo.addons.queue_job.job import Job


@tagged("post_install", "-at_install")
class TestQueue(MailboxCase):
    """The scheduled run queues the mailboxes; the jobs sync them, as any Odoo server would."""

    def setUp(self):
        super().setUp()
        self.anna.action_mailbox_activate()
        self.bert.action_mailbox_activate()

    def jobs(self, state=None):
        domain = [("model_name", "=", "cats_mail_sync.sync"), ("method_name", "=", "_sync_job")]
        if state:
            domain.append(("state", "=", state))
        return self.env["queue.job"].search(domain)

    def perform(self, job):
        """Run a queued job as queue_job's runner does (started, performed, done)."""
        job = Job.load(self.env, job.uuid)
        job.set_started()
        job.store()
        job.perform()
        job.set_done()
        job.store()

    def test_the_scheduled_run_queues_each_mailbox_due_once(self):
        self.run_cron()
        jobs = self.jobs()
        self.assertEqual(len(jobs), 2)
        self.assertEqual(set(jobs.mapped("channel")), {"root.cats_mail_sync"})
        self.assertEqual(sorted(jobs.mapped("args")), sorted([[self.anna.id], [self.bert.id]]))
        self.run_cron()
        self.assertEqual(self.jobs(), jobs, "a mailbox waiting in the queue is not queued twice")
        self.assertFalse(self.messages_with("<queued@x>"))

        self.perform(jobs.filtered(lambda job: job.args == [self.anna.id]))
        self.run_cron()
        self.assertEqual(len(self.jobs("pending")), 2, "once its job is done, a mailbox is queued again")

    def test_a_mailbox_not_due_is_not_queued(self):
        self.bert.action_mailbox_deactivate()
        self.run_cron()
        self.assertEqual(self.jobs().mapped("args"), [[self.anna.id]])

    def test_the_job_logs_the_mailboxs_new_mail(self):
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<queued@x>"))
        self.run_cron()
        self.assertFalse(self.messages_with("<queued@x>"), "the scheduled run itself reads no mailbox")
        for job in self.jobs():
            self.perform(job)
        self.assertEqual(len(self.logged(self.candidate, "<queued@x>")), 1)
        self.assertEqual(self.anna.mailbox_state, "active")
        run = self.env["cats_mail_sync.run"].search([("user_id", "=", self.anna.id)])
        self.assertEqual((run.looked_at, run.logged), (1, 1))

    def test_a_job_out_of_time_queues_the_rest_at_once(self):
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<later@x>"))
        self.run_cron()
        job = self.jobs().filtered(lambda job: job.args == [self.anna.id])
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.run_seconds", "0")
        self.perform(job)
        self.assertFalse(self.messages_with("<later@x>"))
        after = self.jobs("pending").filtered(lambda job: job.args == [self.anna.id])
        self.assertEqual(len(after), 1)
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.run_seconds", False)
        self.perform(after)
        self.assertEqual(len(self.logged(self.candidate, "<later@x>")), 1)
