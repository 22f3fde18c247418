import email
from email import policy
from unittest.mock import patch

from odoo import modules
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged

from .common import ANNA, BERT, PASSWORDS, MailboxCase, allow_local_servers, make_mail
from .harness.dns_server import DnsServer
from .harness.dovecot import Dovecot
from .harness.smtp_server import SMTPTestServer

TESS = "tess@recruit.example.test"
TESS_PASSWORD = "tess-Secret-44"


def wizard_class(env):
    return type(env["cats_mail_sync.setup"])


def srv_records(imap_port, smtp_port):
    """DNS of recruit.example.test: SRV records pointing at the local servers."""
    return {
        "_imaps._tcp.recruit.example.test": [("SRV", f"0 1 {imap_port} localhost.")],
        "_submissions._tcp.recruit.example.test": [("SRV", f"0 1 {smtp_port} localhost.")],
    }


@tagged("post_install", "-at_install")
class TestSetup(MailboxCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp = SMTPTestServer(PASSWORDS).__enter__()
        cls.addClassCleanup(cls.smtp.__exit__, None, None, None)
        cls.dns = DnsServer(srv_records(cls.imap.ssl_port, cls.smtp.ssl_port)).__enter__()
        cls.addClassCleanup(cls.dns.__exit__, None, None, None)

    def setUp(self):
        super().setUp()
        options = {
            "resolver": self.dns.resolver(),
            "ca_file": self.imap.ca_file,
            "timeout": 1.0,
            "allow_private": True,
        }
        patcher = patch.object(wizard_class(self.env), "_discovery_options", lambda _self: options)
        patcher.start()
        self.addCleanup(patcher.stop)

    def setup_for(self, user, **values):
        return self.env["cats_mail_sync.setup"].with_user(user).create({"email": user.email, **values})

    def test_detection_from_srv_records_prefills_the_settings(self):
        setup = self.setup_for(self.anna)
        setup.action_detect()
        self.assertEqual(setup.step, "detected")
        self.assertEqual(
            (setup.imap_host, setup.imap_port, setup.imap_security),
            ("localhost", self.imap.ssl_port, "ssl"),
        )
        self.assertEqual(
            (setup.smtp_host, setup.smtp_port, setup.smtp_security), ("localhost", self.smtp.ssl_port, "ssl")
        )
        self.assertEqual(setup.login, ANNA)
        # In plain words first; the technical outcome follows, small.
        self.assertIn("Mail servers your domain announces:</b> Found IMAP", setup.detection_log)
        self.assertIn("A settings file of your domain:</b> nothing found here", setup.detection_log)
        self.assertIn(
            "(Your domain's autoconfig: autoconfig.recruit.example.test has no address", setup.detection_log
        )
        self.assertTrue(setup.needs_confirmation, "localhost is outside recruit.example.test")
        with self.assertRaisesRegex(UserError, "outside your domain"):
            setup.action_save()

    def test_detection_failure_opens_the_manual_form_prefilled(self):
        setup = self.setup_for(self.anna, email="nobody@unknown.example.test")
        setup.action_detect()
        self.assertEqual(setup.step, "settings")
        self.assertEqual(setup.login, "nobody@unknown.example.test")
        self.assertFalse(setup.imap_host)
        self.assertIn("No settings were found for this address", setup.detection_log)
        self.assertIn("unknown.example.test has no MX record", setup.detection_log)

    def test_provider_notes(self):
        setup = self.setup_for(self.anna, provider="office365")
        self.assertIn("no longer accepts passwords over IMAP", setup.provider_note)
        setup.provider = "gmail"
        self.assertIn("App passwords", setup.provider_note)
        setup.provider = "other"
        self.assertFalse(setup.provider_note)

    def test_ports_must_match_the_security_choice(self):
        mixups = [
            ({"imap_port": 143, "imap_security": "ssl"}, "Port 143 does not go with SSL/TLS for IMAP"),
            ({"imap_port": 993, "imap_security": "starttls"}, "Port 993 does not go with STARTTLS for IMAP"),
            ({"smtp_port": 587, "smtp_security": "ssl"}, "Port 587 does not go with SSL/TLS for SMTP"),
            ({"smtp_port": 465, "smtp_security": "starttls"}, "Port 465 does not go with STARTTLS for SMTP"),
            ({"imap_port": 70000}, "Port 70000 is not a valid port number"),
        ]
        for values, message in mixups:
            with self.subTest(values=values), self.assertRaisesRegex(ValidationError, message):
                self.setup_for(self.anna, imap_host="localhost", smtp_host="localhost", **values)
        self.setup_for(self.anna, imap_host="localhost", imap_port=143, imap_security="starttls")

    def test_connection_test_reports_each_side(self):
        setup = self.setup_for(
            self.anna,
            step="settings",
            login=ANNA,
            password=PASSWORDS[ANNA],
            imap_host="localhost",
            imap_port=self.imap.ssl_port,
            smtp_host="localhost",
            smtp_port=self.smtp.ssl_port,
        )
        setup.action_test()
        self.assertIn("IMAP: signed in; found Inbox and your Sent folder (Sent)", setup.test_result)
        self.assertIn("SMTP: signed in over an encrypted connection", setup.test_result)
        self.assertEqual(self.smtp.messages, [], "a connection test sends no mail")

        setup.password = "wrong-Secret"
        setup.action_test()
        self.assertIn("IMAP: The mail server refused the login name or password", setup.test_result)
        self.assertIn("SMTP: The mail server refused the login name or password", setup.test_result)
        self.assertNotIn("wrong-Secret", setup.test_result)

        setup.write(
            {"password": PASSWORDS[ANNA], "smtp_port": self.smtp.starttls_port, "smtp_security": "starttls"}
        )
        with Dovecot(PASSWORDS, folders={"Archive": None}) as bare:
            setup.write({"imap_port": bare.ssl_port, "password": PASSWORDS[ANNA]})
            setup.action_test()
        self.assertIn("IMAP: No Sent folder was found", setup.test_result)
        self.assertIn("SMTP: signed in", setup.test_result)

    def test_save_puts_the_settings_on_the_profile(self):
        setup = self.setup_for(
            self.anna,
            step="settings",
            login=ANNA,
            password="new-Secret",
            imap_host="localhost",
            imap_port=self.imap.ssl_port,
            smtp_host="localhost",
            smtp_port=self.smtp.ssl_port,
        )
        setup.action_save()
        self.assertEqual(self.anna.mailbox_imap_port, self.imap.ssl_port)
        self.assertEqual(self.anna.mailbox_smtp_port, self.smtp.ssl_port)
        self.assertEqual(self.saved_password(self.anna), "new-Secret")
        self.assertFalse(setup.password, "the assistant forgets the password once saved")

    def manual_setup(self, user, email, **values):
        settings = {
            "step": "settings",
            "login": email,
            "password": PASSWORDS.get(email, TESS_PASSWORD),
            "imap_host": "localhost",
            "imap_port": self.imap.ssl_port,
        }
        return self.setup_for(user, **dict(settings, email=email, **values))

    def test_back_and_another_address_leave_no_stale_settings(self):
        setup = self.setup_for(self.anna)
        setup.action_detect()
        self.assertEqual(setup.imap_host, "localhost")
        setup.password = PASSWORDS[ANNA]
        setup.action_back()
        self.assertEqual(setup.step, "provider")
        self.assertEqual(
            (setup.imap_host, setup.smtp_host, setup.login, setup.detection_log, setup.test_result),
            (False, False, False, False, False),
        )
        self.assertEqual((setup.imap_port, setup.smtp_port), (993, 465))
        self.assertFalse(self.env["cats_mail_sync.secret"]._has(setup, "cats_password"))
        # Found nothing for another address: nothing of the earlier one is shown.
        setup.write({"email": "nobody@unknown.example.test", "smtp_host": "smtp.old.example.test"})
        setup.action_detect()
        self.assertEqual(setup.step, "settings")
        self.assertEqual((setup.imap_host, setup.smtp_host), (False, False))

    def test_save_asks_before_it_stops_an_active_mailbox(self):
        self.anna.action_mailbox_activate()
        same = self.manual_setup(self.anna, ANNA, smtp_host="localhost", smtp_port=self.smtp.ssl_port)
        self.assertFalse(same.stops_logging)
        action = same.with_user(self.anna).action_save()
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertIn("goes on logging", action["params"]["message"])

        other = self.manual_setup(self.anna, ANNA, imap_host="127.0.0.1")
        self.assertTrue(other.stops_logging)
        with self.assertRaisesRegex(UserError, "Stop logging the current mailbox"):
            other.action_save()
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertEqual(self.anna.mailbox_imap_host, "localhost")
        other.stop_logging_confirmed = True
        action = other.action_save()
        self.assertEqual(self.anna.mailbox_state, "inactive")
        self.assertIn("Now click Activate", action["params"]["message"])

    def test_the_user_s_email_changes_only_when_chosen(self):
        tess = new_test_user(self.env, login="tess", email="tess@old.example.test", groups="base.group_user")
        setup = self.manual_setup(tess, TESS)
        self.assertFalse(setup.set_user_email, "a user with an email keeps it unless they choose")
        setup.action_save()
        self.assertEqual((tess.email, tess.mailbox_email), ("tess@old.example.test", TESS))
        setup = self.manual_setup(tess, TESS, set_user_email=True)
        setup.action_save()
        self.assertEqual(tess.email, TESS)

        nomail = new_test_user(self.env, login="nomail", groups="base.group_user")
        nomail.email = False
        setup = self.manual_setup(nomail, "nomail@recruit.example.test")
        self.assertTrue(setup.set_user_email, "a user without an email gets this one")

    def test_save_says_what_next_and_reopens_the_email_tab_and_activate_confirms(self):
        setup = self.manual_setup(self.anna, ANNA, password=PASSWORDS[ANNA])
        self.assertFalse(setup.tested)
        setup.action_test()
        self.assertTrue(setup.tested)
        setup.imap_port = self.imap.ssl_port + 0  # written again, same value
        setup.write({"imap_security": "ssl"})
        self.assertFalse(setup.tested, "changed settings are tested again")
        action = setup.with_user(self.anna).action_save()
        self.assertEqual(action["tag"], "display_notification")
        self.assertIn("Now click Activate", action["params"]["message"])
        following = action["params"]["next"]
        view = self.env.ref("cats_mail_sync.res_users_view_form_preferences_email")
        self.assertEqual((following["res_id"], following["views"]), (self.anna.id, [(view.id, "form")]))
        # The recruiter's own mailbox fields are in it, on the tab it opens on.
        arch = self.env["res.users"].with_user(self.anna).get_view(view.id)["arch"]
        self.assertIn('name="cats_mail_sync" autofocus="autofocus"', arch)
        self.assertIn('name="mailbox_imap_host"', arch)

        done = self.anna.with_user(self.anna).action_mailbox_activate()
        self.assertEqual(done["tag"], "display_notification")
        self.assertIn("Your mailbox is active", done["params"]["message"])
        self.assertEqual(done["params"]["next"]["res_id"], self.anna.id)
        # An administrator activating Anna's mailbox is not sent to a Preferences dialog of hers.
        admin = self.env.ref("base.user_admin")
        done = self.anna.with_user(admin).action_mailbox_activate()
        self.assertEqual(done["params"]["next"], {"type": "ir.actions.client", "tag": "soft_reload"})

    def test_an_unconfirmed_address_can_be_sent_its_confirmation_again(self):
        anna = self.anna.with_user(self.anna)
        anna.action_mailbox_activate()
        self.assertFalse(self.anna.mailbox_email_confirmed)
        mails = self.env["mail.mail"].search([("email_to", "=", ANNA)])
        action = anna.action_mailbox_confirm_again()
        self.assertIn("A confirmation mail is on its way", action["params"]["message"])
        again = self.env["mail.mail"].search([("email_to", "=", ANNA)]) - mails
        self.assertEqual(len(again), 1)
        self.assertIn(again.message_id[len("<cats-mail-sync-confirm.") :].split("@")[0], again.message_id)
        with self.assertRaises(AccessError):
            self.anna.with_user(self.bert).action_mailbox_confirm_again()

    def test_sign_in_is_offered_only_once_set_up(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("google_gmail_client_id", False)
        setup = self.setup_for(self.anna, provider="gmail")
        self.assertFalse(setup.sign_in_with)
        self.assertIn("App passwords", setup.provider_note)
        self.assertNotIn("Sign in", setup.provider_note)
        setup.provider = "office365"
        self.assertFalse(setup.sign_in_with)
        self.assertIn("ask your administrator", setup.provider_note)
        params.set_param("google_gmail_client_id", "id")
        params.set_param("google_gmail_client_secret", "secret")
        setup = self.setup_for(self.anna, provider="gmail")
        self.assertEqual(setup.sign_in_with, "google")

    def test_the_saved_password_of_another_user_cannot_be_borrowed(self):
        with self.assertRaises(AccessError):
            self.setup_for(
                self.anna,
                user_id=self.bert.id,
                step="settings",
                login="x",
                imap_host="localhost",
                imap_port=self.imap.ssl_port,
            )
        own = self.setup_for(self.anna, step="settings", imap_host="localhost")
        with self.assertRaises(UserError):
            own.write({"user_id": self.bert.id})

    def test_outgoing_mail_server_only_once_the_address_is_proven(self):
        self.anna.write(
            {
                "mailbox_smtp_host": "localhost",
                "mailbox_smtp_port": self.smtp.ssl_port,
                "mailbox_password": PASSWORDS[ANNA],
            }
        )
        self.assertFalse(self.anna.mailbox_mail_server_id)
        self.anna.action_mailbox_activate()
        # localhost is no server of recruit.example.test: the login alone proves nothing.
        self.assertFalse(self.anna.mailbox_email_confirmed)
        self.assertFalse(self.anna.mailbox_mail_server_id.active)
        self.assertNotIn(self.anna.mailbox_mail_server_id, self.env["ir.mail_server"]._find_mail_server(ANNA))
        confirmation = self.env["mail.mail"].search([("email_to", "=", ANNA)])
        self.assertEqual(len(confirmation), 1)
        self.assertFalse(confirmation.mail_server_id)

        # It arrives in Anna's Inbox: her mailbox proves the address.
        self.deliver(self.anna, confirmation_as_delivered(confirmation))
        self.sync(self.anna)
        self.assertTrue(self.anna.mailbox_email_confirmed)
        server = self.anna.mailbox_mail_server_id
        self.assertEqual(
            (server.from_filter, server.smtp_host, server.smtp_port), (ANNA, "localhost", self.smtp.ssl_port)
        )
        self.assertFalse(server.smtp_pass, "the password stays out of ir.mail_server")
        self.assertEqual(self.env["ir.mail_server"]._find_mail_server(ANNA)[0], server)
        self.anna.action_mailbox_deactivate()
        self.assertFalse(server.active)

    def test_only_the_recruiter_s_own_mail_leaves_through_their_server(self):
        self.anna.write(
            {
                "mailbox_smtp_host": "localhost",
                "mailbox_smtp_port": self.smtp.ssl_port,
                "mailbox_password": PASSWORDS[ANNA],
            }
        )
        self.anna.action_mailbox_activate()
        confirmation = self.env["mail.mail"].search([("email_to", "=", ANNA)])
        self.deliver(self.anna, confirmation_as_delivered(confirmation))
        self.sync(self.anna)
        server = self.anna.mailbox_mail_server_id
        self.assertTrue(server.active)
        self.env["ir.mail_server"].search([("id", "!=", server.id)]).active = False
        mails = self.env["mail.mail"].create(
            [
                {"email_from": ANNA, "email_to": "carla@example.com", "subject": "Anna's own"},
                {"email_from": BERT, "email_to": "carla@example.com", "subject": "A colleague's"},
                {
                    "email_from": "notifications@recruit.example.test",
                    "email_to": "carla@example.com",
                    "subject": "Password reset",
                },
                {
                    "email_from": BERT,
                    "email_to": "carla@example.com",
                    "subject": "Forced onto Anna's server",
                    "mail_server_id": server.id,
                },
            ]
        )
        with patch.object(modules.module, "current_test", False):
            mails.send(raise_exception=False)
        through_anna = sorted(
            email.message_from_bytes(m.data)["Subject"] for m in self.smtp.messages if m.login == ANNA
        )
        self.assertEqual(through_anna, ["Anna's own"])

    def test_a_forged_confirmation_proves_nothing(self):
        self.anna.action_mailbox_activate()
        forged = make_mail("x@x.example", ANNA, message_id="<cats-mail-sync-confirm.guessed@cats-mail-sync>")
        self.deliver(self.anna, forged)
        self.sync(self.anna)
        self.assertFalse(self.anna.mailbox_email_confirmed)

    def test_a_login_proves_the_address_on_the_domain_s_own_server(self):
        cases = [
            ("anna@agency.nl", "anna@agency.nl", "imap.agency.nl", True),
            ("anna@agency.nl", "anna@agency.nl", "agency.nl", True),
            ("anna@gmail.com", "anna@gmail.com", "imap.gmail.com", True),
            ("anna@agency.nl", "anna@agency.nl", "imap.gmail.com", False),
            ("boss@agency.nl", "boss@agency.nl", "imap.attacker.example", False),
            ("boss@agency.nl", "boss@agency.nl", "agency.nl.attacker.example", False),
            ("anna@agency.nl", "anna2@agency.nl", "imap.agency.nl", False),
        ]
        for address, login, host, proven in cases:
            user = self.env["res.users"].new(
                {"mailbox_email": address, "mailbox_login": login, "mailbox_imap_host": host}
            )
            self.assertEqual(user._mailbox_login_proves_address(), proven, (address, login, host))


def confirmation_as_delivered(mail):
    """The confirmation mail as it lands in a mailbox."""
    return make_mail(
        "notifications@company.example", mail.email_to, subject=mail.subject, message_id=mail.message_id
    )


@tagged("post_install", "-at_install")
class TestSetupTour(HttpCase):
    """The whole flow in Chromium, as a recruiter without admin rights."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.imap = Dovecot({TESS: TESS_PASSWORD}).start()
        cls.addClassCleanup(cls.imap.stop)
        cls.smtp = SMTPTestServer({TESS: TESS_PASSWORD}).__enter__()
        cls.addClassCleanup(cls.smtp.__exit__, None, None, None)
        cls.dns = DnsServer(srv_records(cls.imap.ssl_port, cls.smtp.ssl_port)).__enter__()
        cls.addClassCleanup(cls.dns.__exit__, None, None, None)
        allow_local_servers(cls.env, cls.imap.ca_file)
        cls.tess = new_test_user(
            cls.env,
            tz="Europe/Amsterdam",
            login="tess",
            password="tess-odoo-password",
            email="tess@old.example.test",
            groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
        )
        cls.candidate = cls.env["hr.candidate"].create(
            {"partner_name": "Carla", "email_from": "carla@example.com"}
        )

    def test_recruiter_sets_up_the_mailbox_in_the_browser_then_mail_leaves_through_their_smtp(self):
        self.assertFalse(self.tess.has_group("base.group_system"))
        options = {
            "resolver": self.dns.resolver(),
            "ca_file": self.imap.ca_file,
            "timeout": 1.0,
            "allow_private": True,
        }
        with patch.object(wizard_class(self.env), "_discovery_options", lambda _self: options):
            self.start_tour("/odoo", "cats_mail_sync_setup_tour", login="tess", timeout=120)

        self.assertEqual(self.tess.mailbox_state, "active")
        self.assertEqual(self.tess.email, TESS)
        # The confirmation mail reaches Tess's Inbox; the next sync proves her address.
        self.assertFalse(self.tess.mailbox_email_confirmed)
        confirmation = self.env["mail.mail"].search([("email_to", "=", TESS)])
        self.imap.append(TESS, "INBOX", confirmation_as_delivered(confirmation))
        self.env["cats_mail_sync.sync"]._sync(self.tess)
        self.assertTrue(self.tess.mailbox_email_confirmed)

        candidate = self.candidate.with_user(self.tess)
        with patch.object(modules.module, "current_test", False):
            candidate.message_post(
                body="Could you come in on Tuesday?",
                subject="Interview",
                partner_ids=candidate.partner_id.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
            self.env["mail.mail"].sudo().search([("state", "=", "outgoing")]).send()
        sent_to_carla = [m for m in self.smtp.messages if m.rcpt_tos == ("carla@example.com",)]
        self.assertEqual(len(sent_to_carla), 1, [(m.mail_from, m.rcpt_tos) for m in self.smtp.messages])
        sent = sent_to_carla[0]
        self.assertEqual(sent.login, TESS)
        self.assertEqual(sent.mail_from, TESS)
        self.assertEqual(sent.rcpt_tos, ("carla@example.com",))
        mail = email.message_from_bytes(sent.data, policy=policy.default)
        self.assertIn("Could you come in on Tuesday?", mail.get_body(("plain",)).get_content())
        self.assertIn("tess@recruit.example.test", mail["From"])
