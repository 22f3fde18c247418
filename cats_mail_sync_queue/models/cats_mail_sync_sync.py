import time

from odoo import api, models

from odoo.addons.cats_mail_sync import series
from odoo.addons.queue_job.exception import FailedJobError

CHANNEL = "root.cats_mail_sync"


class CatsMailSyncSync(models.AbstractModel):
    """With queue_job, the scheduled run only queues a job per mailbox due: the jobs are run by any
    Odoo server of the database, as many at a time as the channel's capacity allows."""

    _inherit = "cats_mail_sync.sync"

    @api.model
    def _sync_due(self, users, deadline):
        """Queue each mailbox's sync (none that is queued already); the time budget is the jobs'."""
        for user in users:
            self._queue_sync(user)
        cron = self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")
        series.note_progress(cron, len(users), 0)

    @api.model
    def _queue_sync(self, user):
        # One key per mailbox: a mailbox waiting in the queue is not queued again.
        return self.with_delay(channel=CHANNEL, identity_key=f"cats_mail_sync.sync:{user.id}")._sync_job(
            user.id
        )

    @api.model
    def _sync_job(self, user_id):
        """Log the new mail of a recruiter's mailbox"""
        user = self.env["res.users"].sudo().browse(user_id).exists()
        if user.mailbox_state != "active":
            return
        # A job runs as a request, under Odoo's limit_time_real.
        deadline = time.monotonic() + self._run_seconds(cron=False)
        tally = self._sync_run(user, deadline)
        if tally and tally.unexpected:
            # A fault in Odoo, not in the mailbox: the job fails, so that Job Queue shows it; the
            # run recorded on the mailbox is kept.
            self._commit()
            raise FailedJobError("\n".join(map(str, tally.problems)))
        if time.monotonic() >= deadline:
            # Stopped with mail left, maybe: the next job goes on at once rather than at the next run.
            self._queue_sync(user)
