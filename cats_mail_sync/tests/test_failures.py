import logging

import odoo
from odoo.exceptions import UserError
from odoo.tests import tagged

from ..models.cats_mail_sync_sync import FAILURES_BEFORE_ERROR, LOCK_SPACE
from .common import ANNA, BERT, PASSWORDS, MailboxCase, make_mail
from .harness.dovecot import Dovecot, free_port
from .harness.tls import authority


@tagged("post_install", "-at_install")
class TestFailures(MailboxCase):
    def auth_failures(self):
        """Failed logins Dovecot saw, read from its own log."""
        log = (self.dovecot.root / "dovecot.log").read_text()
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

    def test_network_trouble_is_retried_then_puts_the_mailbox_in_error(self):
        self.anna.action_mailbox_activate()
        self.anna.write({"mailbox_imap_port": free_port()})  # nothing listens there
        for run in range(1, FAILURES_BEFORE_ERROR):
            self.run_cron()
            self.assertEqual(self.anna.mailbox_state, "active", f"run {run}")
            self.assertEqual(self.anna.mailbox_failures, run)
            self.assertIn("No mail server answered", self.anna.mailbox_error)
        self.run_cron()
        self.assertEqual(self.anna.mailbox_state, "error")

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
            self.anna.write({"mailbox_imap_port": impostor.ssl_port})
            with self.assertRaisesRegex(UserError, "(?i)hostname mismatch"):
                self.anna.action_mailbox_activate()

    def test_plaintext_cannot_be_configured(self):
        with self.assertRaises(ValueError):
            self.anna.write({"mailbox_imap_security": "plain"})

    def test_unknown_host_is_explained(self):
        self.anna.write({"mailbox_imap_host": "imap.nonexistent.invalid"})
        with self.assertRaisesRegex(UserError, "does not exist"):
            self.anna.action_mailbox_activate()
