import logging
from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time

import odoo
from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from ..models.cats_mail_sync_sync import LOCK_SPACE, RETRIES_AT_EVERY_RUN
from .common import ANNA, BERT, PASSWORDS, MailboxCase, make_mail
from .harness.dovecot import Dovecot, free_port
from .harness.tls import authority


@tagged("post_install", "-at_install")
class TestFailures(MailboxCase):
    def auth_failures(self):
        """Failed logins Dovecot saw, read from its own log."""
        log = (self.imap.root / "dovecot.log").read_text()
        return log.count("auth failed")

    def test_wrong_password_stops_logins_until_settings_change(self):
        self.anna.action_mailbox_activate()
        self.anna.write({"mailbox_password": "changed-on-the-server"})  # as if changed elsewhere
        failures_seen = self.auth_failures()

        with self.assertLogs("odoo.addons.cats_mail_sync", logging.INFO) as logs:
            self.run_cron()

        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertIn("refused the login name or password", self.anna.mailbox_error)
        self.assertNotIn("changed-on-the-server", "\n".join(logs.output) + self.anna.mailbox_error)
        notice = self.env["mail.message"].search(
            [
                ("partner_ids", "in", self.anna.partner_id.ids),
                ("subject", "=", "Your mailbox is no longer logged"),
            ]
        )
        self.assertEqual(len(notice), 1)
        self.assertEqual(self.auth_failures(), failures_seen + 1)

        self.run_cron()
        self.run_cron()
        self.assertEqual(self.auth_failures(), failures_seen + 1, "no further login with a refused password")

        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        self.assertEqual(self.anna.mailbox_state, "active")
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<resumed@x>"))
        self.run_cron()
        self.assertEqual(len(self.logged(self.candidate, "<resumed@x>")), 1)
        self.assertFalse(self.anna.mailbox_error)

    def test_wrong_password_at_activation_is_explained(self):
        self.anna.write({"mailbox_password": "typo"})
        with self.assertRaisesRegex(UserError, "refused the login name or password") as caught:
            self.anna.action_mailbox_activate()
        self.assertNotIn("typo", str(caught.exception))

    def move_server(self, user, port):
        """The server moves (or goes away) with no change to the settings; the password is saved
        for the new port (it goes only where it was saved for)."""
        self.env.cr.execute("UPDATE res_users SET mailbox_imap_port = %s WHERE id = %s", [port, user.id])
        user.invalidate_recordset(["mailbox_imap_port"])
        self.env["cats_mail_sync.credentials"]._save_password(user, PASSWORDS[user.mailbox_login])

    def test_network_trouble_is_retried_for_as_long_as_it_lasts_and_loses_nothing(self):
        self.anna.action_mailbox_activate()
        port = self.anna.mailbox_imap_port
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<outage@x>"))
        self.move_server(self.anna, free_port())  # nothing listens there: an outage
        start = fields.Datetime.now()
        minutes = 0
        for run in range(1, RETRIES_AT_EVERY_RUN + 1):
            minutes += 10
            with freeze_time(start + timedelta(minutes=minutes)):
                self.run_cron()
            self.assertEqual(self.anna.mailbox_state, "active", f"run {run}")
            self.assertEqual(self.anna.mailbox_failures, run)
            self.assertIn("No mail server answered", self.anna.mailbox_error)
            self.assertIn("Retrying since", self.anna.mailbox_error)
        # Then hourly: the next runs within the hour leave the mailbox alone.
        self.assertEqual(self.anna.mailbox_retry_at, start + timedelta(minutes=minutes, hours=1))
        with freeze_time(start + timedelta(minutes=minutes + 30)):
            self.run_cron()
        self.assertEqual(self.anna.mailbox_failures, RETRIES_AT_EVERY_RUN)
        for hour in (1, 2, 3):  # hours of outage: still retried, never given up
            with freeze_time(start + timedelta(minutes=minutes, hours=hour, seconds=1)):
                self.run_cron()
            self.assertEqual(self.anna.mailbox_state, "active")
        self.assertEqual(self.anna.mailbox_failures, RETRIES_AT_EVERY_RUN + 3)

        # The server is back: the mailbox resumes by itself, with the mail of the outage.
        self.move_server(self.anna, port)
        with freeze_time(start + timedelta(minutes=minutes, hours=4, seconds=1)):
            self.run_cron()
        self.assertEqual(len(self.logged(self.candidate, "<outage@x>")), 1)
        self.assertFalse(self.anna.mailbox_error)
        self.assertFalse(self.anna.mailbox_retry_at)

    def test_a_fault_in_odoo_is_a_problem_to_report_logged_once_and_loses_nothing(self):
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<bug@x>"))
        logger_class = type(self.env["cats_mail_sync.logger"])
        start = fields.Datetime.now()
        with patch.object(logger_class, "_log", side_effect=KeyError("a bug")):
            with self.assertLogs("odoo.addons.cats_mail_sync", logging.INFO) as first:
                self.run_cron()
            with (
                freeze_time(start + timedelta(minutes=10)),
                self.assertLogs("odoo.addons.cats_mail_sync", logging.INFO) as again,
            ):
                self.run_cron()
        tracebacks = [record for record in first.records + again.records if record.exc_info]
        self.assertEqual(len(tracebacks), 1, "the traceback once for the administrator, not at every run")
        self.assertEqual(tracebacks[0].levelno, logging.ERROR)
        self.assertIn("the same unexpected error again (KeyError)", "\n".join(again.output))
        self.assertEqual((self.anna.mailbox_state, self.anna.mailbox_failures), ("active", 2))
        self.assertIn("An unexpected error (KeyError)", self.anna.mailbox_error)
        self.assertIn("Please report it to your administrator", self.anna.mailbox_error)
        runs = self.env["cats_mail_sync.run"].search([("user_id", "=", self.anna.id)])
        self.assertEqual(runs.mapped("unexpected"), [True, True])
        self.assertFalse(self.messages_with("<bug@x>"))

        # The fault corrected: the next run logs the mail and the problem is gone.
        with freeze_time(start + timedelta(minutes=20)):
            self.run_cron()
        self.assertEqual(len(self.logged(self.candidate, "<bug@x>")), 1)
        self.assertFalse(self.anna.mailbox_error)

    def test_one_broken_mailbox_does_not_stop_the_others(self):
        self.anna.action_mailbox_activate()
        self.bert.action_mailbox_activate()
        self.anna.write({"mailbox_password": "wrong"})
        self.deliver(self.bert, make_mail("carla.candidate@example.com", BERT, message_id="<for-bert@x>"))

        self.run_cron()

        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertEqual(self.bert.mailbox_state, "active")
        self.assertEqual(len(self.logged(self.candidate, "<for-bert@x>")), 1)

    def test_a_mailbox_is_never_synced_twice_at_once(self):
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<busy@x>"))
        other_worker = odoo.sql_db.db_connect(self.env.cr.dbname).cursor()
        try:
            other_worker.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_SPACE, self.anna.id))
            self.assertIsNone(self.sync(self.anna))
            notice = self.anna.with_user(self.anna).action_mailbox_sync()["params"]
            self.assertEqual(notice["type"], "warning")
            self.assertIn("being synchronized right now", notice["message"])
            self.assertFalse(self.messages_with("<busy@x>"))
        finally:
            other_worker.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, self.anna.id))
            other_worker.close()
        self.assertEqual(self.sync(self.anna), 1)

    def test_untrusted_certificate_is_refused(self):
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.ca_file", False)
        with self.assertRaisesRegex(UserError, "certificate of localhost is not trusted"):
            self.anna.action_mailbox_activate()

    def test_wrong_host_name_is_refused(self):
        cert = authority().leaf("imap.other.example.net")
        with Dovecot(PASSWORDS, cert=cert) as impostor:
            self.anna.write({"mailbox_imap_port": impostor.ssl_port, "mailbox_password": PASSWORDS[ANNA]})
            with self.assertRaisesRegex(UserError, "(?i)hostname mismatch"):
                self.anna.action_mailbox_activate()

    def test_plaintext_cannot_be_configured(self):
        with self.assertRaises(ValueError):
            self.anna.write({"mailbox_imap_security": "plain"})

    def test_unknown_host_is_explained(self):
        self.anna.write(
            {"mailbox_imap_host": "imap.nonexistent.invalid", "mailbox_password": PASSWORDS[ANNA]}
        )
        with self.assertRaisesRegex(UserError, "does not exist"):
            self.anna.action_mailbox_activate()
