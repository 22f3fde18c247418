from odoo.tests import tagged

from odoo.addons.cats_mail_sync.tests.common import MailboxCase


@tagged("post_install", "-at_install")
class TestQueue(MailboxCase):
    """The scheduled run queues the mailboxes (test_job_runner runs the jobs)."""

    def setUp(self):
        super().setUp()
        self.anna.action_mailbox_activate()
        self.bert.action_mailbox_activate()

    def jobs(self, state=None):
        domain = [("model_name", "=", "cats_mail_sync.sync"), ("method_name", "=", "_sync_job")]
        if state:
            domain.append(("state", "=", state))
        return self.env["queue.job"].search(domain)

    def test_the_scheduled_run_queues_each_mailbox_due_once(self):
        self.run_cron()
        jobs = self.jobs()
        self.assertEqual(len(jobs), 2)
        self.assertEqual(set(jobs.mapped("channel")), {"root.cats_mail_sync"})
        self.assertEqual(sorted(jobs.mapped("args")), sorted([[self.anna.id], [self.bert.id]]))
        self.run_cron()
        self.assertEqual(self.jobs(), jobs, "a mailbox waiting in the queue is not queued twice")

        jobs.filtered(lambda job: job.args == [self.anna.id]).state = "done"
        self.run_cron()
        self.assertEqual(len(self.jobs("pending")), 2, "once its job is done, a mailbox is queued again")

    def test_a_mailbox_not_due_is_not_queued(self):
        self.bert.action_mailbox_deactivate()
        self.run_cron()
        self.assertEqual(self.jobs().mapped("args"), [[self.anna.id]])
