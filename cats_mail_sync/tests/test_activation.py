from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import ANNA, PASSWORDS, MailboxCase, make_mail
from .harness.dovecot import Dovecot


@tagged("post_install", "-at_install")
class TestActivation(MailboxCase):
    def test_activation_records_where_now_is_and_old_mail_is_not_logged(self):
        old = make_mail("Carla.Candidate@example.com", ANNA, subject="Old", message_id="<old@example.com>")
        self.deliver(self.anna, old)
        self.deliver(
            self.anna, make_mail(ANNA, "carla.candidate@example.com", message_id="<old-sent@x>"), "Sent"
        )
        self.assertEqual(self.anna.mailbox_state, "inactive")

        self.anna.action_mailbox_activate()

        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertTrue(self.anna.mailbox_activated_at)
        folders = {f.role: f for f in self.anna.mailbox_folder_ids}
        self.assertEqual(folders["inbox"].name, "INBOX")
        self.assertEqual(folders["sent"].name, self.imap.sent_folder)
        self.assertEqual(folders["inbox"].last_uid, 1)
        self.assertEqual(folders["sent"].last_uid, 1)
        with self.imap.client(ANNA) as client:
            uidvalidity = client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
        self.assertEqual(folders["inbox"].uidvalidity, uidvalidity)

        self.assertEqual(self.sync(self.anna), 0)
        self.assertFalse(self.messages_with("<old@example.com>"))
        self.assertFalse(self.messages_with("<old-sent@x>"))

    def test_sent_folder_found_by_localized_name(self):
        with Dovecot(PASSWORDS, folders={"Verzonden items": None}) as dutch:
            self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.ca_file", dutch.ca_file)
            self.anna.write({"mailbox_imap_port": dutch.ssl_port, "mailbox_password": PASSWORDS[ANNA]})
            self.anna.action_mailbox_activate()
            sent = self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "sent")
            self.assertEqual(sent.name, "Verzonden items")

    def test_no_sent_folder_is_explained(self):
        with Dovecot(PASSWORDS, folders={"Archive": None}) as bare:
            self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.ca_file", bare.ca_file)
            self.anna.write({"mailbox_imap_port": bare.ssl_port, "mailbox_password": PASSWORDS[ANNA]})
            with self.assertRaisesRegex(UserError, "No Sent folder was found"):
                self.anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "inactive")

    def test_starttls_connection(self):
        self.anna.write(
            {
                "mailbox_imap_port": self.imap.starttls_port,
                "mailbox_imap_security": "starttls",
                "mailbox_password": PASSWORDS[ANNA],
            }
        )
        self.anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "active")

    def test_sync_now_says_what_happened_and_keeps_a_failure_on_record(self):
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<now@x>"))
        notice = self.anna.with_user(self.anna).action_mailbox_sync()["params"]
        self.assertEqual((notice["type"], notice["message"]), ("success", "New mails logged: 1."))
        self.anna.write({"mailbox_password": "wrong"})
        notice = self.anna.with_user(self.anna).action_mailbox_sync()["params"]
        self.assertEqual(notice["type"], "danger")
        self.assertIn("refused the login name or password", notice["message"])
        self.assertEqual(self.anna.mailbox_state, "error")

    def test_idle_checks_are_counted_on_the_mailbox_not_written_in_the_sync_log(self):
        self.anna.action_mailbox_activate()
        runs = self.env["cats_mail_sync.run"]
        for check in (1, 2, 3):
            self.assertEqual(self.sync(self.anna), 0)
            self.assertEqual(self.anna.mailbox_checks_since_logged, check)
        self.assertFalse(
            runs.search([("user_id", "=", self.anna.id)]), "no row for a check that found nothing"
        )
        self.assertTrue(self.anna.mailbox_last_sync_at)

        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<after-idle@x>"))
        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(self.anna.mailbox_checks_since_logged, 0)
        run = runs.search([("user_id", "=", self.anna.id)])
        self.assertEqual((len(run), run.looked_at, run.logged), (1, 1, 1))
        # The run lists what it logged, on each record (the candidate and the application).
        self.assertEqual(run.logged_message_ids, self.messages_with("<after-idle@x>"))
        self.assertEqual(set(run.logged_message_ids.mapped("model")), {"hr.candidate", "hr.applicant"})

        # A run that looked at mail without logging any is written (it says what it saw), and so is
        # a failed check.
        self.deliver(self.anna, make_mail("stranger@elsewhere.example.net", ANNA, message_id="<stray@x>"))
        self.assertEqual(self.sync(self.anna), 0)
        self.assertEqual(self.anna.mailbox_checks_since_logged, 1)
        self.assertEqual(len(runs.search([("user_id", "=", self.anna.id)])), 2)

    def test_deactivate_stops_logging(self):
        self.anna.action_mailbox_activate()
        self.anna.action_mailbox_deactivate()
        self.assertEqual(self.anna.mailbox_state, "inactive")
        self.assertFalse(self.anna.mailbox_folder_ids)
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<after-off@x>"))
        self.run_cron()
        self.assertFalse(self.messages_with("<after-off@x>"))

    def test_incomplete_settings_cannot_activate(self):
        self.anna.write({"mailbox_imap_host": False})
        self.assertEqual(self.anna.mailbox_state, "not_configured")
        with self.assertRaisesRegex(UserError, "Fill in"):
            self.anna.action_mailbox_activate()

    def test_cron_runs_every_ten_minutes_as_root(self):
        cron = self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")
        self.assertEqual((cron.interval_number, cron.interval_type), (10, "minutes"))
        self.assertEqual(cron.code.strip(), "model._cron()")
        self.assertEqual(cron.model_id.model, "cats_mail_sync.sync")
        self.assertTrue(cron.active)
