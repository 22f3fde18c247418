"""A database upgraded from Odoo 18 to 19: the mail logged on candidates ends on the applicants.

The upgrade of Odoo itself is not run here (it needs Odoo's upgrade scripts): the database is made
to look as it does when this addon's migration runs, with the candidates' table and the
applicants' link to it that 18 had, and mail logged on candidates as 18 logged it.
"""

import logging

from odoo.tests import TransactionCase, new_test_user, tagged

from .. import series
from .common import load_migration

CANDIDATE = "hr.candidate"


# A database comes from 18 to 19, never the other way: on 18 there is nothing to upgrade.
if series.SERIES >= 19:

    @tagged("post_install", "-at_install")
    class TestUpgradeFrom18(TransactionCase):
        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            cls.migration = load_migration("19.0.1.6.0")
            cls.recruiter = new_test_user(cls.env, "rita", email="rita@recruit.example.test")
            cls.job = cls.env["hr.job"].create({"name": "Welder"})
            sofia = {"partner_name": "Sofia", "email_from": "sofia@example.com"}
            cls.talent = series.new_person(cls.env, sofia)
            cls.application = series.new_application(cls.talent, {"job_id": cls.job.id})
            cls.refused = series.new_application(
                cls.talent,
                {
                    "job_id": cls.env["hr.job"].create({"name": "Painter"}).id,
                    "active": False,
                    "refuse_reason_id": cls.env["hr.applicant.refuse.reason"].search([], limit=1).id,
                },
            )

        def setUp(self):
            super().setUp()
            # What the upgrade leaves of 18 until it ends (rolled back with the test).
            self.env.cr.execute(
                "CREATE TABLE hr_candidate (id serial PRIMARY KEY, email_normalized varchar, partner_id int)"
            )
            self.env.cr.execute("ALTER TABLE hr_applicant ADD COLUMN candidate_id int")

        def candidate(self, address=None, partner=None, applications=()):
            self.env.cr.execute(
                "INSERT INTO hr_candidate (email_normalized, partner_id) VALUES (%s, %s) RETURNING id",
                [address, partner and partner.id],
            )
            candidate_id = self.env.cr.fetchone()[0]
            for application in applications:
                self.env.cr.execute(
                    "UPDATE hr_applicant SET candidate_id = %s WHERE id = %s", [candidate_id, application.id]
                )
            return candidate_id

        def log(self, record, message_id, attachment=False):
            """A mail logged on ``record`` as the logger logs it."""
            return record.sudo().message_post(
                body="<p>Hello</p>",
                message_type="email",
                subtype_xmlid="mail.mt_note",
                message_id=message_id,
                attachments=[("cv.pdf", b"%PDF-1.4 cv", {})] if attachment else [],
                mailbox_user_id=self.recruiter.id,
                mailbox_to="sofia@example.com",
            )

        def log_on_candidate(self, candidate_id, message_id, attachment=False):
            """A mail logged on a candidate of 18 (its record type is gone on 19)."""
            scratch = self.env["res.partner"].create({"name": "scratch"})
            message = self.log(scratch, message_id, attachment)
            self.env.flush_all()
            self.env.cr.execute(
                "UPDATE mail_message SET model = %s, res_id = %s WHERE id = %s",
                [CANDIDATE, candidate_id, message.id],
            )
            self.env.cr.execute(
                "UPDATE ir_attachment SET res_model = %s, res_id = %s WHERE id = ANY(%s)",
                [CANDIDATE, candidate_id, message.attachment_ids.ids],
            )
            self.env.invalidate_all()
            return message

        def remove_from_candidate(self, candidate_id, message_id):
            self.env["cats_mail_sync.removal"].create(
                {
                    "message_id": message_id,
                    "model": CANDIDATE,
                    "res_id": candidate_id,
                    "mailbox_user_id": self.recruiter.id,
                }
            )

        def migrate(self):
            with self.assertLogs("odoo.addons.cats_mail_sync", logging.INFO) as logs:
                self.migration.migrate(self.env.cr, "18.0.1.5.0")
            self.env.invalidate_all()
            return "\n".join(logs.output)

        def logged(self, record, message_id):
            return self.env["mail.message"].search(
                [
                    ("model", "=", record._name),
                    ("res_id", "=", record.id),
                    ("message_id", "=", message_id),
                    ("mailbox_user_id", "!=", False),
                ]
            )

        def on_candidates(self):
            return self.env["mail.message"].search_count([("model", "=", CANDIDATE)])

        def test_mail_on_a_candidate_goes_to_the_ongoing_application_and_the_talent(self):
            candidate = self.candidate("sofia@example.com", applications=self.application | self.refused)
            self.log_on_candidate(candidate, "<cv@x>", attachment=True)
            self.migrate()
            for record, record_type in ((self.application, "hr.applicant"), (self.talent, "talent")):
                message = self.logged(record, "<cv@x>")
                self.assertEqual(len(message), 1, f"once on the {record_type}")
                self.assertEqual(message.mailbox_record_type, record_type)
                self.assertEqual(message.mailbox_user_id, self.recruiter)
                self.assertEqual(message.mailbox_to, "sofia@example.com")
                self.assertEqual(
                    [(a.name, a.res_model, a.res_id) for a in message.attachment_ids],
                    [("cv.pdf", record._name, record.id)],
                    "the CV in that record's dossier",
                )
            self.assertFalse(self.logged(self.refused, "<cv@x>"), "not on the refused application")
            self.assertEqual(self.on_candidates(), 0)

        def test_a_record_that_has_the_mail_keeps_it_once(self):
            self.log(self.application, "<both@x>")
            candidate = self.candidate("sofia@example.com", applications=self.application)
            self.log_on_candidate(candidate, "<both@x>")
            self.migrate()
            self.assertEqual(len(self.logged(self.application, "<both@x>")), 1)
            self.assertEqual(len(self.logged(self.talent, "<both@x>")), 1)
            self.assertEqual(self.on_candidates(), 0)

        def test_a_mail_on_records_that_have_it_already_goes(self):
            self.log(self.application, "<twice@x>")
            self.log(self.talent, "<twice@x>")
            candidate = self.candidate("sofia@example.com", applications=self.application)
            self.log_on_candidate(candidate, "<twice@x>", attachment=True)
            self.migrate()
            self.assertEqual(len(self.logged(self.application, "<twice@x>")), 1)
            self.assertEqual(len(self.logged(self.talent, "<twice@x>")), 1)
            self.assertEqual(self.on_candidates(), 0)
            self.assertFalse(self.env["ir.attachment"].search([("res_model", "=", CANDIDATE)]))

        def test_a_mail_removed_from_a_candidate_stays_removed(self):
            self.log(self.application, "<own-copy@x>")
            candidate = self.candidate("sofia@example.com", applications=self.application)
            self.remove_from_candidate(candidate, "<removed@x>")
            self.remove_from_candidate(candidate, "<own-copy@x>")
            self.migrate()
            removals = self.env["cats_mail_sync.removal"].search([])
            self.assertEqual(
                sorted((r.message_id, r.model, r.res_id) for r in removals),
                sorted(
                    [
                        ("<removed@x>", "hr.applicant", self.application.id),
                        ("<removed@x>", "hr.applicant", self.talent.id),
                        ("<own-copy@x>", "hr.applicant", self.talent.id),
                    ]
                ),
                "removed from the records it was not logged on; the application keeps its own copy",
            )
            self.assertEqual(len(self.logged(self.application, "<own-copy@x>")), 1)

        def test_a_candidate_without_applications(self):
            contact = self.env["res.partner"].create({"name": "Mark", "email": "mark@client.example.com"})
            by_contact = self.candidate("mark@client.example.com", partner=contact)
            by_address = self.candidate("sofia@example.com")
            self.log_on_candidate(by_contact, "<mark@x>")
            self.log_on_candidate(by_address, "<sofia@x>")
            self.migrate()
            self.assertEqual(len(self.logged(contact, "<mark@x>")), 1, "on their contact")
            self.assertEqual(len(self.logged(self.application, "<sofia@x>")), 1, "on their address's")
            self.assertEqual(len(self.logged(self.talent, "<sofia@x>")), 1)
            self.assertEqual(self.on_candidates(), 0)

        def test_again_changes_nothing(self):
            candidate = self.candidate("sofia@example.com", applications=self.application)
            self.log_on_candidate(candidate, "<cv@x>", attachment=True)
            self.migrate()
            logged = [("mailbox_user_id", "!=", False)]
            before = self.env["mail.message"].search_count(logged)
            self.migrate()
            self.assertEqual(self.env["mail.message"].search_count(logged), before)

        def test_nothing_to_follow_leaves_the_mail_and_says_so(self):
            unknown = self.candidate()
            self.log_on_candidate(unknown, "<unknown@x>")
            output = self.migrate()
            self.assertIn("Mail logged on 1 candidates stays on them", output)
            self.assertEqual(self.on_candidates(), 1, "never deleted")
            self.env.cr.execute("DROP TABLE hr_candidate")
            self.assertIn("the upgrade left no candidates to follow", self.migrate())
            self.assertEqual(self.on_candidates(), 1)
