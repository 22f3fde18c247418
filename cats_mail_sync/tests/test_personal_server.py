"""Odoo 19: a recruiter's outgoing server is their personal mail server."""

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from .. import series
from .common import ANNA, PASSWORDS, MailboxCase
from .harness.smtp_server import SMTPTestServer
from .test_setup import confirmation_as_delivered

# Personal mail servers came with Odoo 19: on 18 the addon's own rules are all there is
# (test_setup, test_security).
if series.SERIES >= 19:

    @tagged("post_install", "-at_install")
    class TestPersonalServer(MailboxCase):
        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            cls.smtp = SMTPTestServer(PASSWORDS).__enter__()
            cls.addClassCleanup(cls.smtp.__exit__, None, None, None)
            # An administrator lets users set up their own outgoing server (Settings).
            cls.env["ir.config_parameter"].set_param("base_setup.default_external_email_server", True)

        def send_through_mailbox(self, user):
            """``user``'s mailbox activated with an SMTP server, and its address proven."""
            user.write(
                {
                    "mailbox_smtp_host": "localhost",
                    "mailbox_smtp_port": self.smtp.ssl_port,
                    "mailbox_password": PASSWORDS[user.mailbox_email],
                }
            )
            user.action_mailbox_activate()
            confirmation = self.env["mail.mail"].search(
                [("email_to", "=", user.mailbox_email), ("message_id", "like", "cats-mail-sync-confirm")]
            )
            self.deliver(user, confirmation_as_delivered(confirmation))
            self.sync(user)
            self.assertTrue(user.mailbox_mail_server_id.active)
            return user.mailbox_mail_server_id

        def owned_by(self, user):
            return (
                self.env["ir.mail_server"]
                .with_context(active_test=False)
                .search([("owner_user_id", "=", user.id)])
            )

        def test_the_mailbox_s_server_is_the_recruiter_s_personal_server(self):
            self.anna.email = "anna.at.home@example.com"  # Odoo's own lookup goes by this address
            server = self.send_through_mailbox(self.anna)
            self.assertEqual(server.owner_user_id, self.anna)
            self.assertEqual(self.anna.outgoing_mail_server_id, server)
            self.env["res.users"]._gc_personal_mail_servers()
            self.assertTrue(server.exists(), "Odoo's clean-up keeps it while in use")
            self.assertEqual(self.env["ir.mail_server"]._find_mail_server(ANNA)[0], server)
            self.anna.action_mailbox_deactivate()
            self.env.invalidate_all()  # as the next request reads it
            self.assertFalse(self.anna.outgoing_mail_server_id)
            self.env["res.users"]._gc_personal_mail_servers()
            self.assertFalse(self.owned_by(self.anna), "a deactivated mailbox's server is cleaned up")

        def test_a_personal_server_set_up_before_gives_way(self):
            before = self.env["ir.mail_server"].create(
                {
                    "name": "Anna's own",
                    "smtp_host": "smtp.example.com",
                    "from_filter": ANNA,
                    "smtp_user": ANNA,
                    "owner_user_id": self.anna.id,
                }
            )
            server = self.send_through_mailbox(self.anna)
            self.assertFalse(before.exists())
            self.assertEqual(self.owned_by(self.anna), server)

        def test_another_outgoing_server_is_refused_while_the_mailbox_sends(self):
            self.send_through_mailbox(self.anna)
            with self.assertRaisesRegex(UserError, "deactivate the mailbox"):
                self.env["res.users"].with_user(self.anna).action_setup_outgoing_mail_server("default")
            self.assertTrue(self.anna.mailbox_mail_server_id.active, "still sending Anna's mail")

        def test_a_colleague_s_mail_cannot_name_it(self):
            server = self.send_through_mailbox(self.anna)
            with self.assertRaises(ValidationError):
                self.env["mail.mail"].with_user(self.bert).sudo().create(
                    {"email_from": ANNA, "email_to": "carla@example.com", "mail_server_id": server.id}
                )
