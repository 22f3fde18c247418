import socket
from unittest.mock import patch

from lxml import etree

import odoo
from odoo.exceptions import UserError
from odoo.tests import tagged

from .. import series
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
        self.assertEqual(set(run.logged_message_ids.mapped("model")), {series.PERSON, "hr.applicant"})

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


@tagged("post_install", "-at_install")
class TestProfileButtons(MailboxCase):
    """Sync now, Deactivate and Send the confirmation again keep the recruiter on their profile and
    say what happened (a recruiter's profile is a dialog: an action that only reloads closes it)."""

    def profile(self, following):
        view = self.env.ref("cats_mail_sync.res_users_view_form_preferences_email")
        self.assertEqual((following["res_id"], following["views"]), (self.anna.id, [(view.id, "form")]))

    def test_sync_now_and_deactivate_keep_the_profile_open_and_say_what_happened(self):
        anna = self.anna.with_user(self.anna)
        anna.action_mailbox_activate()
        synced = anna.action_mailbox_sync()["params"]
        self.assertEqual((synced["type"], synced["message"]), ("success", "New mails logged: 0."))
        self.profile(synced["next"])

        arch = (
            self.env["res.users"]
            .with_user(self.anna)
            .get_view(self.env.ref("base.view_users_form_simple_modif").id)
        )
        deactivate = arch["arch"].split('name="action_mailbox_deactivate"')[1].split("/>")[0]
        self.assertIn('confirm="Stop logging your mail?', deactivate)
        done = anna.action_mailbox_deactivate()["params"]
        self.assertEqual(done["type"], "info")
        self.assertIn("Your mail is no longer logged", done["message"])
        self.profile(done["next"])
        self.assertEqual(self.anna.mailbox_state, "inactive")

    def test_a_confirmation_that_cannot_leave_says_so(self):
        anna = self.anna.with_user(self.anna)
        anna.action_mailbox_activate()
        with socket.socket() as closed:  # a port nothing listens on: "Connection refused"
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        self.env["ir.mail_server"].create(
            {"name": "Company mail", "smtp_host": "127.0.0.1", "smtp_port": port, "sequence": 1}
        )
        # Sent for real (Odoo sends nothing while a test runs): Odoo's own SMTP client, refused.
        with patch.object(odoo.modules.module, "current_test", None):
            notice = anna.action_mailbox_confirm_again()["params"]
        self.assertEqual(notice["type"], "danger")
        self.assertIn("The confirmation mail could not be sent", notice["message"])
        self.assertIn("Connection refused", notice["message"])
        self.profile(notice["next"])

    def test_colours_say_stopped_retrying_or_next_step(self):
        arch = (
            self.env["res.users"]
            .with_user(self.anna)
            .get_view(self.env.ref("base.view_users_form_simple_modif").id)["arch"]
        )
        tree = etree.fromstring(arch)
        problems = {
            node.get("class"): node.get("invisible")
            for node in tree.iter("field")
            if node.get("name") == "mailbox_error"
        }
        self.assertEqual(
            problems,
            {
                "text-danger": "not mailbox_error or mailbox_state != 'error'",
                "text-warning": "not mailbox_error or mailbox_state != 'active'",
                "text-info": "not mailbox_error or mailbox_state not in ('inactive', 'not_configured')",
            },
        )
        [badge] = [
            node
            for node in tree.iter("field")
            if node.get("name") == "mailbox_state" and node.get("widget") == "badge"
        ]
        self.assertEqual(
            badge.get("decoration-warning"), "mailbox_state == 'active' and mailbox_failing_since"
        )
        # An unconfigured profile offers no second way to type servers and a password: Configure.
        [settings] = tree.xpath("//group[@name='cats_mail_sync_settings']")
        self.assertEqual(
            settings.get("invisible"), "mailbox_state == 'not_configured' and not mailbox_imap_host"
        )
        [unconfirmed] = tree.xpath("//div[@name='cats_mail_sync_unconfirmed']")
        self.assertIn("not mailbox_smtp_host", unconfirmed.get("invisible"))
