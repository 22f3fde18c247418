"""Odoo 19: a person is their applications (and talent profile); their mail is never dropped."""

from odoo.tests import tagged

from .. import series
from .common import ANNA, MailboxCase, make_mail

# On 18 the candidate always takes the mail (test_logging); 19 has no candidate to fall back on.
if series.SERIES >= 19:

    @tagged("post_install", "-at_install")
    class TestApplicants(MailboxCase):
        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            cls.anna.action_mailbox_activate()
            reason = cls.env["hr.applicant.refuse.reason"].search([], limit=1)
            # Applied twice through the website (no talent profile); both refused since.
            cls.first, cls.latest = (
                cls.env["hr.applicant"].create(
                    {
                        "partner_name": "Eve Ended",
                        "email_from": "eve.ended@example.com",
                        "job_id": cls.env["hr.job"].create({"name": job}).id,
                    }
                )
                for job in ("Welder", "Painter")
            )
            (cls.first | cls.latest).write({"refuse_reason_id": reason.id, "active": False})

        def test_a_person_whose_applications_all_ended_gets_the_mail_on_the_latest(self):
            self.deliver(self.anna, make_mail("eve.ended@example.com", ANNA, message_id="<eve@x>"))
            self.assertEqual(self.sync(self.anna), 1)
            self.assertEqual(len(self.logged(self.latest, "<eve@x>")), 1, "on the latest application")
            self.assertFalse(self.logged(self.first, "<eve@x>"), "once: not on every ended one")

        def test_an_ongoing_application_takes_it_and_the_ended_ones_do_not(self):
            ongoing = self.env["hr.applicant"].create(
                {"partner_name": "Eve Ended", "email_from": "eve.ended@example.com", "job_id": self.job.id}
            )
            self.deliver(self.anna, make_mail("eve.ended@example.com", ANNA, message_id="<eve-2@x>"))
            self.sync(self.anna)
            self.assertEqual(len(self.logged(ongoing, "<eve-2@x>")), 1)
            self.assertFalse(self.logged(self.latest, "<eve-2@x>") | self.logged(self.first, "<eve-2@x>"))
