import base64
import datetime
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged

from .. import series
from .common import ANNA, BERT, MailboxCase, make_mail

PDF = b"%PDF-1.4 cv of Carla"


@tagged("post_install", "-at_install")
class TestLogging(MailboxCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        hired_stage = cls.env["hr.recruitment.stage"].create({"name": "Contract signed", "hired_stage": True})
        cls.hired_application = series.new_application(
            cls.candidate,
            {
                "job_id": cls.env["hr.job"].create({"name": "Driver"}).id,
                "stage_id": hired_stage.id,
            },
        )
        cls.anna.action_mailbox_activate()

    def test_inbound_mail_logged_whole_on_candidate_application_and_contact(self):
        sent_at = datetime.datetime(2026, 11, 20, 9, 30, tzinfo=datetime.timezone.utc)
        mail = make_mail(
            "Carla Candidate <carla.candidate@example.com>",
            ANNA,
            cc=["Chris <CHRIS@client.example.com>"],
            subject="My application",
            body="Please find my CV attached",
            message_id="<in-1@example.com>",
            date=sent_at,
            attachments=[("cv.pdf", PDF, "application", "pdf")],
        )
        self.deliver(self.anna, mail)

        self.assertEqual(self.sync(self.anna), 1)

        for record in (self.candidate, self.application, self.client_contact):
            message = self.logged(record, "<in-1@example.com>")
            self.assertEqual(len(message), 1, record)
            self.assertEqual(message.subject, "My application")
            self.assertIn("Please find my CV attached", message.body)
            self.assertEqual(message.mailbox_to, ANNA)
            self.assertEqual(message.mailbox_cc, "Chris <CHRIS@client.example.com>")
            self.assertFalse(message.mailbox_bcc)
            self.assertNotIn("client.example.com", message.body.lower())
            self.assertEqual(message.author_id, self.candidate.partner_id)
            self.assertEqual(message.date, fields.Datetime.to_datetime("2026-11-20 09:30:00"))
            self.assertEqual(message.message_type, "email")
            self.assertEqual(message.subtype_id, self.env.ref("mail.mt_note"))
            self.assertEqual(message.mailbox_user_id, self.anna)
            self.assertEqual(message.attachment_ids.mapped("name"), ["cv.pdf"])
            self.assertEqual(base64.b64decode(message.attachment_ids.datas), PDF)
            self.assertEqual(
                (message.attachment_ids.res_model, message.attachment_ids.res_id), (record._name, record.id)
            )
        self.assertFalse(self.logged(self.hired_application))
        self.assertFalse(self.logged(self.refused_application))
        self.assertEqual(self.anna.mailbox_logged_count, 1)

    def test_outbound_mail_with_bcc_logged_with_recruiter_as_author(self):
        mail = make_mail(
            ANNA,
            "someone@elsewhere.example.org",
            bcc=["carla.candidate@example.com"],
            subject="Interview",
            message_id="<out-1@recruit>",
        )
        self.deliver(self.anna, mail, "Sent")

        self.sync(self.anna)

        message = self.logged(self.candidate, "<out-1@recruit>")
        self.assertEqual(message.author_id, self.anna.partner_id)
        self.assertEqual(len(self.logged(self.application, "<out-1@recruit>")), 1)

    def test_bcc_on_inbound_mail_is_not_matched(self):
        mail = make_mail(
            "someone@elsewhere.example.org",
            ANNA,
            bcc=["carla.candidate@example.com"],
            message_id="<in-bcc@x>",
        )
        self.deliver(self.anna, mail)
        self.sync(self.anna)
        self.assertFalse(self.messages_with("<in-bcc@x>"))

    def test_unmatched_mail_is_never_stored(self):
        mail = make_mail(
            "stranger@elsewhere.example.org",
            ANNA,
            message_id="<unrelated@x>",
            attachments=[("secret.pdf", PDF, "application", "pdf")],
        )
        uid = self.deliver(self.anna, mail)
        attachments_before = self.env["ir.attachment"].search_count([("name", "=", "secret.pdf")])

        self.assertEqual(self.sync(self.anna), 0)

        self.assertFalse(self.messages_with("<unrelated@x>"))
        self.assertEqual(
            self.env["ir.attachment"].search_count([("name", "=", "secret.pdf")]), attachments_before
        )
        self.assertEqual(self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "inbox").last_uid, uid)

    def test_own_address_internal_users_and_candidate_partner_are_not_contacts(self):
        mail = make_mail(ANNA, [BERT, "carla.candidate@example.com"], message_id="<team@x>")
        self.deliver(self.anna, mail, "Sent")
        self.sync(self.anna)
        logged = self.messages_with("<team@x>")
        self.assertEqual(
            sorted((m.model, m.res_id) for m in logged),
            sorted([(series.PERSON, self.candidate.id), ("hr.applicant", self.application.id)]),
        )

    def test_contact_with_several_addresses_is_matched(self):
        agency = self.env["res.partner"].create(
            {"name": "Agency", "email": "desk@agency.example.com; Jobs@Agency.example.com"}
        )
        self.deliver(self.anna, make_mail("jobs@agency.example.com", ANNA, message_id="<agency@x>"))
        self.sync(self.anna)
        self.assertEqual(len(self.logged(agency, "<agency@x>")), 1)

    def test_no_flag_changes_on_the_server(self):
        uid = self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<flags@x>"))
        self.sync(self.anna)
        self.assertEqual(len(self.logged(self.candidate, "<flags@x>")), 1)
        with self.imap.client(ANNA) as client:
            client.select_folder(self.imap.inbox, readonly=True)
            flags = set(client.get_flags([uid])[uid]) - {b"\\Recent"}  # \Recent is per session, not stored
        self.assertEqual(flags, set())

    def test_nobody_notified_and_sender_not_following(self):
        followers_before = self.candidate.message_partner_ids
        self.deliver(
            self.anna,
            make_mail(
                "carla.candidate@example.com", [ANNA, "chris@client.example.com"], message_id="<quiet@x>"
            ),
        )
        self.sync(self.anna)
        messages = self.messages_with("<quiet@x>")
        self.assertEqual(len(messages), 3)
        self.assertFalse(self.env["mail.notification"].search([("mail_message_id", "in", messages.ids)]))
        self.assertFalse(self.env["mail.mail"].search([("mail_message_id", "in", messages.ids)]))
        self.assertEqual(self.candidate.message_partner_ids, followers_before)

    def test_second_run_logs_nothing_new(self):
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<again@x>"))
        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(self.sync(self.anna), 0)
        self.assertEqual(len(self.messages_with("<again@x>")), 2)  # candidate + ongoing application

    def test_same_mail_in_inbox_sent_and_two_mailboxes_logged_once_per_record(self):
        self.bert.action_mailbox_activate()
        mail = make_mail(ANNA, [BERT, "carla.candidate@example.com"], message_id="<shared@x>")
        self.deliver(self.anna, mail, "Sent")
        self.deliver(self.anna, mail, "INBOX")
        self.deliver(self.bert, mail, "INBOX")

        self.run_cron()

        self.assertEqual(len(self.logged(self.candidate, "<shared@x>")), 1)
        self.assertEqual(len(self.logged(self.application, "<shared@x>")), 1)
        self.assertEqual(len(self.messages_with("<shared@x>")), 2)

    def test_crash_before_commit_logs_the_mail_once_at_the_next_run(self):
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<crash@x>"))
        folder_class = type(self.env["cats_mail_sync.folder"])
        real_write = folder_class.write
        writes = []

        def crash_before_the_cursor_moves(this, values):
            writes.append(values)
            if len(writes) == 1:
                raise RuntimeError("worker killed")
            return real_write(this, values)

        with patch.object(folder_class, "write", crash_before_the_cursor_moves):
            self.assertEqual(self.sync(self.anna), 0)
        self.assertFalse(self.messages_with("<crash@x>"))
        self.assertEqual(self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "inbox").last_uid, 0)
        self.assertIn("unexpected error (RuntimeError)", self.anna.mailbox_error)

        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(len(self.logged(self.candidate, "<crash@x>")), 1)
        self.assertEqual(len(self.logged(self.application, "<crash@x>")), 1)
        self.assertFalse(self.anna.mailbox_error)

    def test_uidvalidity_change_neither_duplicates_nor_skips(self):
        before = make_mail(ANNA, "carla.candidate@example.com", message_id="<before-reset@x>")
        self.deliver(self.anna, before, "Sent")
        self.sync(self.anna)
        self.assertEqual(len(self.logged(self.candidate, "<before-reset@x>")), 1)
        sent = self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "sent")
        old_uidvalidity = sent.uidvalidity
        # The server rebuilds the folder: new UIDVALIDITY, the same mail
        # renumbered, plus one mail that came in meanwhile and one from
        # before activation.
        with self.imap.client(ANNA) as client:
            client.delete_folder(self.imap.sent_folder)
            client.create_folder(self.imap.sent_folder)
        long_ago = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        self.deliver(
            self.anna,
            make_mail(ANNA, "carla.candidate@example.com", message_id="<ancient@x>"),
            "Sent",
            date=long_ago,
        )
        self.deliver(self.anna, before, "Sent")
        self.deliver(
            self.anna, make_mail(ANNA, "carla.candidate@example.com", message_id="<during-reset@x>"), "Sent"
        )

        self.assertEqual(self.sync(self.anna), 1)

        self.assertNotEqual(sent.uidvalidity, old_uidvalidity)
        self.assertEqual(sent.last_uid, 3)
        self.assertEqual(len(self.logged(self.candidate, "<before-reset@x>")), 1)
        self.assertEqual(len(self.logged(self.candidate, "<during-reset@x>")), 1)
        self.assertFalse(self.messages_with("<ancient@x>"))

    def test_odd_mail_is_kept_whole_as_a_file(self):
        raw = (
            b"From: carla.candidate@example.com\r\nTo: " + ANNA.encode() + b"\r\n"
            b"Subject: =?x-unknown?q?odd?=\r\nMessage-ID: <odd@x>\r\n"
            b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\nHello \xff\xfe world\r\n"
        )
        self.deliver(self.anna, raw)
        self.assertEqual(self.sync(self.anna), 1)
        message = self.logged(self.candidate, "<odd@x>")
        self.assertEqual(len(message), 1)
        self.assertTrue(message.body)

    def test_mail_without_message_id_logged_once_over_runs(self):
        raw = make_mail("carla.candidate@example.com", ANNA, subject="No id").as_bytes()
        self.deliver(self.anna, raw)
        self.sync(self.anna)
        self.deliver(self.anna, raw, "Sent")
        self.sync(self.anna)
        logged = self.logged(self.candidate)
        self.assertEqual(len(logged), 1)
        self.assertTrue(logged.message_id.endswith("@cats-mail-sync>"))

    def test_matching_takes_the_same_queries_for_many_addresses(self):
        logger = self.env["cats_mail_sync.logger"]
        for i in range(30):
            candidate = series.new_person(
                self.env, {"partner_name": f"C{i}", "email_from": f"c{i}@pool.example.com"}
            )
            series.new_application(candidate, {"job_id": self.job.id})
        self.env["res.partner"].create(
            [{"name": f"P{i}", "email": f"p{i}@pool.example.com"} for i in range(30)]
        )
        self.env.invalidate_all()

        def queries(addresses):
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            found = logger._match(set(addresses), self.anna)
            return self.env.cr.sql_log_count - before, found

        few, found_few = queries(["c0@pool.example.com", "p0@pool.example.com"])
        many, found_many = queries(
            [f"c{i}@pool.example.com" for i in range(30)] + [f"p{i}@pool.example.com" for i in range(30)]
        )
        self.assertEqual(len(found_few), 2)
        self.assertEqual(len(found_many), 60)
        self.assertEqual(few, many)
