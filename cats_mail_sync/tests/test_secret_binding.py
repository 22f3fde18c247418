"""A saved password goes only to the server and login it was saved for (issue 14).

Servers a secret must never reach are :class:`harness.recorder.Recorder`s: TLS
servers under the tests' CA that record every connection and line they get, so a
client that would send the password does send it there. Whoever changes the
settings (the owner in the assistant, an administrator over RPC, an SQL update),
and whatever runs next (Test connection, Activate, Sync now, the scheduled run,
a mail sent from Odoo), nothing arrives there.
"""

import email
from unittest.mock import patch

from odoo import modules
from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from .. import series
from .common import ANNA, BERT, PASSWORDS, MailboxCase, make_mail
from .harness.recorder import Recorder
from .harness.smtp_server import SMTPTestServer

FORGOTTEN = "The server or login changed: type the password again"
ASKED = "Type your password: the server or login differs from the saved settings"
REFUSED = "The password was saved for another server or login"


@tagged("post_install", "-at_install")
class TestPasswordGoesOnlyWhereSaved(MailboxCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp = SMTPTestServer(PASSWORDS).__enter__()
        cls.addClassCleanup(cls.smtp.__exit__, None, None, None)
        cls.admin = cls.env.ref("base.user_admin")

    def setUp(self):
        super().setUp()
        self.smtp.messages.clear()
        self.anna.write(
            {
                "mailbox_smtp_host": "localhost",
                "mailbox_smtp_port": self.smtp.ssl_port,
                "mailbox_password": PASSWORDS[ANNA],
            }
        )

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def recorder(self, protocol="imap", **options):
        server = Recorder(protocol, **options).__enter__()
        self.addCleanup(server.__exit__, None, None, None)
        return server

    def assert_nothing_sent(self, server):
        self.assertEqual(server.connections, 0, f"{server.protocol} received: {server.received()!r}")

    def activate_with_a_mail_logged(self):
        """Anna's mailbox active, with its cursors, and one mail logged."""
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<before@x>"))
        self.assertEqual(self.sync(self.anna), 1)

    def try_everything(self, user):
        """What a recruiter, an administrator or the scheduler can then start: Activate, Sync
        now, the scheduled run, a mail sent from Odoo as the recruiter."""
        with self.assertRaises(UserError):
            user.action_mailbox_activate()
        with self.assertRaisesRegex(UserError, "Activate the mailbox first"):
            user.action_mailbox_sync()
        self.run_cron()
        self.send_as_anna("While the password is to be typed again")

    def prove_address(self):
        """Anna's address proven: her mail leaves through her own SMTP server (the only one)."""
        self.anna.write({"mailbox_email_confirmed": True})
        self.env["ir.mail_server"]._cats_mail_sync_update(self.anna)
        self.assertTrue(self.anna.mailbox_mail_server_id.active)
        self.env["ir.mail_server"].search([("id", "!=", self.anna.mailbox_mail_server_id.id)]).active = False

    # ------------------------------------------------------------------
    # An administrator over RPC (write), then Activate, Sync now, the scheduled run
    # ------------------------------------------------------------------

    def test_an_administrator_s_change_of_server_or_login_sends_the_password_nowhere(self):
        # Each change moves one thing only; a recorder listens where the mailbox then points.
        imap_host = self.recorder("imap", address="127.0.0.2", port=self.imap.ssl_port)
        imap_port = self.recorder("imap")
        smtp_host = self.recorder("smtp", address="127.0.0.2", port=self.smtp.ssl_port)
        smtp_port = self.recorder("smtp")
        recorders = (imap_host, imap_port, smtp_host, smtp_port)
        cases = {
            "IMAP host": {"mailbox_imap_host": "127.0.0.2"},
            "IMAP port": {"mailbox_imap_port": imap_port.port},
            "login": {"mailbox_login": BERT},
            "SMTP host": {"mailbox_smtp_host": "127.0.0.2"},
            "SMTP port": {"mailbox_smtp_port": smtp_port.port},
        }
        saved = {
            "mailbox_login": ANNA,
            "mailbox_imap_host": self.imap.host,
            "mailbox_imap_port": self.imap.ssl_port,
            "mailbox_smtp_host": "localhost",
            "mailbox_smtp_port": self.smtp.ssl_port,
        }
        self.activate_with_a_mail_logged()
        admin = self.anna.with_user(self.admin)
        for name, change in cases.items():
            with self.subTest(change=name):
                self.prove_address()
                admin.write(change)
                self.assertEqual(self.anna.mailbox_state, "not_configured")
                self.assertIn(FORGOTTEN, self.anna.mailbox_error)
                self.assertFalse(self.anna.mailbox_mail_server_id.active)
                self.try_everything(admin)
                for server in recorders:
                    self.assert_nothing_sent(server)
                # Back as before, the password typed again: it logs in.
                admin.write({**saved, "mailbox_password": PASSWORDS[ANNA]})
                if self.anna.mailbox_state != "active":
                    admin.action_mailbox_activate()  # another mailbox (host or login) meanwhile
                self.assertEqual(self.anna.mailbox_state, "active")
                self.assertFalse(self.anna.mailbox_error)
        self.assertEqual(self.through_anna(), [], "no mail left through Anna's server meanwhile")

    def test_a_change_in_the_database_itself_sends_the_password_nowhere(self):
        imap = self.recorder("imap")
        self.activate_with_a_mail_logged()
        # As an SQL update would: no ORM, no settings-change logic; the mailbox stays active.
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE res_users SET mailbox_imap_port = %s WHERE id = %s", [imap.port, self.anna.id]
        )
        self.anna.invalidate_recordset()
        self.assertEqual(self.anna.mailbox_state, "active")

        self.run_cron()
        self.assertIn(REFUSED, self.anna.mailbox_error)
        with self.assertRaisesRegex(UserError, REFUSED):
            self.anna.action_mailbox_activate()

        self.assert_nothing_sent(imap)
        self.assertEqual(self.anna.mailbox_state, "error", "no more logins: it needs a person")

    def test_a_password_copied_in_the_database_to_another_mailbox_goes_nowhere_else(self):
        imap = self.recorder("imap")
        self.bert.write({"mailbox_imap_port": imap.port, "mailbox_password": "bert-typed-for-it"})
        self.env.flush_all()
        self.env.cr.execute(
            """UPDATE res_users SET cats_mailbox_password = (
                   SELECT cats_mailbox_password FROM res_users WHERE id = %s) WHERE id = %s""",
            [self.anna.id, self.bert.id],
        )

        with self.assertRaisesRegex(UserError, REFUSED):
            self.bert.action_mailbox_activate()

        self.assert_nothing_sent(imap)

    def test_sync_now_after_a_change_in_the_database_sends_the_password_nowhere(self):
        imap = self.recorder("imap", address="127.0.0.2", port=self.imap.ssl_port)
        self.activate_with_a_mail_logged()
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE res_users SET mailbox_imap_host = '127.0.0.2' WHERE id = %s", [self.anna.id]
        )
        self.anna.invalidate_recordset()

        notice = self.anna.with_user(self.anna).action_mailbox_sync()["params"]

        self.assert_nothing_sent(imap)
        self.assertEqual(notice["type"], "danger")
        self.assertIn(REFUSED, notice["message"])
        self.assertEqual(self.anna.mailbox_state, "error")

    def test_the_password_typed_again_resumes_from_the_cursors(self):
        self.activate_with_a_mail_logged()
        # The administrator moves the mailbox to its STARTTLS port: the same mailbox.
        self.anna.with_user(self.admin).write(
            {"mailbox_imap_port": self.imap.starttls_port, "mailbox_imap_security": "starttls"}
        )
        self.assertEqual(self.anna.mailbox_state, "not_configured")
        self.assertIn(FORGOTTEN, self.anna.mailbox_error)
        self.assertTrue(self.anna.mailbox_folder_ids, "the cursors are kept")
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<meanwhile@x>"))

        self.anna.with_user(self.anna).write({"mailbox_password": PASSWORDS[ANNA]})

        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertFalse(self.anna.mailbox_error)
        self.assertEqual(self.sync(self.anna), 1, "the mail that came meanwhile: nothing lost")
        self.assertEqual(len(self.logged(self.candidate, "<meanwhile@x>")), 1)

    def test_saving_the_same_settings_again_keeps_the_password(self):
        self.activate_with_a_mail_logged()
        same = {
            "mailbox_email": ANNA,
            "mailbox_login": ANNA,
            "mailbox_imap_host": "LocalHost",  # the same host
            "mailbox_imap_port": self.imap.ssl_port,
            "mailbox_smtp_host": "localhost",
            "mailbox_smtp_port": self.smtp.ssl_port,
        }
        self.anna.with_user(self.anna).write(same)
        self.anna.with_user(self.admin).write(same)
        self.anna.with_user(self.admin).write({"mailbox_login": ANNA.upper()})  # the same login
        self.anna.with_user(self.anna).write({"mailbox_login": ANNA})

        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertFalse(self.anna.mailbox_error)
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<same@x>"))
        self.assertEqual(self.sync(self.anna), 1, self.anna.mailbox_error)
        # Without its SMTP server, the password still goes to the IMAP one.
        self.anna.write({"mailbox_smtp_host": False})
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.assertEqual(self.anna.mailbox_state, "active")

    # ------------------------------------------------------------------
    # Outgoing mail (SMTP) sent from Odoo
    # ------------------------------------------------------------------

    def send_as_anna(self, subject):
        mail = self.env["mail.mail"].create(
            {"email_from": ANNA, "email_to": "carla@example.com", "subject": subject}
        )
        with patch.object(modules.module, "current_test", False):
            mail.send(raise_exception=False)
        return mail

    def through_anna(self):
        return [email.message_from_bytes(m.data)["Subject"] for m in self.smtp.messages if m.login == ANNA]

    def test_a_changed_smtp_server_never_gets_the_password(self):
        smtp = self.recorder("smtp")
        self.activate_with_a_mail_logged()
        self.prove_address()
        self.send_as_anna("Through Anna's server")
        self.assertEqual(self.through_anna(), ["Through Anna's server"])

        # In the database itself: the outgoing server is still there, still active.
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE res_users SET mailbox_smtp_port = %s WHERE id = %s", [smtp.port, self.anna.id]
        )
        self.anna.invalidate_recordset()
        server = self.anna.mailbox_mail_server_id
        self.assertTrue(server.active)
        self.assertNotEqual(self.env["ir.mail_server"]._find_mail_server(ANNA)[0], server)
        with (
            patch.object(modules.module, "current_test", False),
            self.assertRaisesRegex(MailDeliveryException, REFUSED),
        ):
            getattr(self.env["ir.mail_server"], series.SMTP_CONNECT)(mail_server_id=server.id, smtp_from=ANNA)
        self.send_as_anna("After an SQL change")
        self.assert_nothing_sent(smtp)

        # Over RPC, by an administrator: the password is forgotten, the server stops.
        self.anna.with_user(self.admin).write({"mailbox_smtp_port": smtp.port})
        self.assertIn(FORGOTTEN, self.anna.mailbox_error)
        self.assertFalse(server.active)
        self.send_as_anna("After an RPC change")
        self.assert_nothing_sent(smtp)
        self.assertEqual(self.through_anna(), ["Through Anna's server"], "the others fell back")

        # Typed again, for the server it is meant for, mail leaves through it again.
        self.anna.with_user(self.anna).write(
            {
                "mailbox_smtp_host": "localhost",
                "mailbox_smtp_port": self.smtp.starttls_port,
                "mailbox_smtp_security": "starttls",
                "mailbox_password": PASSWORDS[ANNA],
            }
        )
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertTrue(server.active)
        self.send_as_anna("Typed again")
        self.assertEqual(self.through_anna(), ["Through Anna's server", "Typed again"])

    # ------------------------------------------------------------------
    # The owner's assistant
    # ------------------------------------------------------------------

    def assistant(self):
        """Anna's assistant, as Configure opens it: her saved settings, no password typed."""
        action = self.anna.with_user(self.anna).action_mailbox_configure()
        return self.env["cats_mail_sync.setup"].with_user(self.anna).browse(action["res_id"])

    def test_the_assistant_sends_the_saved_password_only_to_the_saved_servers(self):
        imap = self.recorder("imap", address="127.0.0.2", port=self.imap.ssl_port)
        other_imap = self.recorder("imap")
        smtp = self.recorder("smtp")
        changes = {
            "host": {"imap_host": "127.0.0.2"},
            "port": {"imap_port": other_imap.port},
            "login": {"login": BERT},
            "smtp port": {"smtp_port": smtp.port},
        }
        for name, change in changes.items():
            with self.subTest(change=name):
                setup = self.assistant()
                setup.write({**change, "step": "settings"})
                with self.assertRaisesRegex(UserError, ASKED):
                    setup.action_test()
                with self.assertRaisesRegex(UserError, ASKED):
                    setup.action_save()
                for server in (imap, other_imap, smtp):
                    self.assert_nothing_sent(server)
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA], "nothing was saved")

        # The saved servers, exactly: the saved password is used, and kept on saving.
        setup = self.assistant()
        setup.action_test()
        self.assertIn("IMAP: signed in", setup.test_result)
        self.assertIn("SMTP: signed in", setup.test_result)
        setup.action_save()
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])

        # A password typed for the new server goes there (and nowhere else).
        setup = self.assistant()
        setup.write({"imap_port": other_imap.port, "password": "typed-for-it"})
        setup.action_test()
        self.assertIn("typed-for-it", other_imap.received())
        self.assert_nothing_sent(imap)

    def test_no_secret_goes_to_a_detected_server_before_it_is_confirmed(self):
        imap = self.recorder("imap")
        setup = self.assistant()
        setup.write({"needs_confirmation": True, "imap_port": imap.port, "password": "typed-Secret"})
        with self.assertRaisesRegex(UserError, "outside your domain"):
            setup.action_test()
        self.assert_nothing_sent(imap)
        setup.confirmed = True
        setup.action_test()
        self.assertEqual(imap.connections, 1)
