import email
from email import policy
from typing import NamedTuple
from unittest.mock import patch

from lxml import etree

from odoo import modules
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, HttpCase, new_test_user, tagged
from odoo.tools.safe_eval import safe_eval

from .. import series
from .common import ANNA, BERT, PASSWORDS, MailboxCase, allow_local_servers, make_mail
from .harness.dns_server import DnsServer
from .harness.dovecot import Dovecot
from .harness.smtp_server import SMTPTestServer

TESS = "tess@recruit.example.test"
TESS_PASSWORD = "tess-Secret-44"


def wizard_class(env):
    return type(env["cats_mail_sync.setup"])


class Seen(NamedTuple):
    """The assistant as the recruiter sees it: its words, its fields, its buttons (label,
    highlighted) and the fields shown that the browser would refuse to save empty (before any button)."""

    text: str
    fields: set
    buttons: list
    invalid: list

    @property
    def highlighted(self):
        return [label for label, primary in self.buttons if primary]


def seen(setup):
    """What the browser shows of ``setup``: its form with each invisible attribute evaluated on the
    record, as the web client does."""
    form = etree.fromstring(setup.get_view()["arch"])
    values = {name: setup[name] for name in setup._fields}
    for node in form.xpath("//*[@invisible]"):
        if safe_eval(node.get("invisible"), values) and node.getparent() is not None:
            node.getparent().remove(node)
    shown = list(form.iter("field"))
    invalid = [
        node.get("name")
        for node in shown
        if setup._fields[node.get("name")].type not in ("boolean", "integer")
        and (setup._fields[node.get("name")].required or safe_eval(node.get("required", "False"), values))
        and not setup[node.get("name")]
    ]
    return Seen(
        " ".join(" ".join(form.itertext()).split()),
        {node.get("name") for node in shown},
        [(button.get("string"), "btn-primary" in button.get("class", "")) for button in form.iter("button")],
        invalid,
    )


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
        # contoso.example.test's mail is received by Microsoft 365.
        microsoft = {"contoso.example.test": [("MX", "0 contoso-example-test.mail.protection.outlook.com.")]}
        cls.dns = DnsServer({**srv_records(cls.imap.ssl_port, cls.smtp.ssl_port), **microsoft}).__enter__()
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
            with self.subTest(values=values):
                # Typed, it is kept (Back still goes back); Test connection and Save say what is wrong.
                setup = self.manual_setup(self.anna, ANNA, smtp_host="localhost", **values)
                for action in (setup.action_test, setup.action_save):
                    with self.assertRaisesRegex(ValidationError, message):
                        action()
        setup = self.manual_setup(self.anna, ANNA, imap_port=143, imap_security="starttls")
        setup.action_test()
        self.assertIn("IMAP: ", setup.test_result, "a port that goes with its security is tried")

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
        # Odoo's own outgoing server: a real SMTP server (Odoo sends nothing while a test runs).
        with SMTPTestServer({"odoo@company.example.test": "company-Secret-1"}) as smtp:
            self.env["ir.mail_server"].create(
                {
                    "name": "Company mail",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp.ssl_port,
                    "smtp_encryption": "ssl",
                    "smtp_user": "odoo@company.example.test",
                    "smtp_pass": "company-Secret-1",
                    "sequence": 1,
                }
            )
            with patch.object(modules.module, "current_test", None):
                action = anna.action_mailbox_confirm_again()
        self.assertEqual(action["params"]["type"], "success")
        self.assertIn(f"A confirmation mail was sent to {ANNA}", action["params"]["message"])
        [sent] = smtp.messages
        self.assertEqual(list(sent.rcpt_tos), [ANNA])
        self.assertTrue(
            email.message_from_bytes(sent.data)["Message-ID"].startswith("<cats-mail-sync-confirm.")
        )
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
        # Written by Anna (Odoo 19 lets only its owner's mail name a personal server).
        mails = (
            self.env["mail.mail"]
            .with_user(self.anna)
            .sudo()
            .create(
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

    # ------------------------------------------------------------------
    # A second look: reopened, corrected, tested in vain
    # ------------------------------------------------------------------

    def configure(self, user):
        """The assistant as Configure on ``user``'s Email tab opens it."""
        action = user.with_user(user).action_mailbox_configure()
        return self.env["cats_mail_sync.setup"].with_user(user).browse(action["res_id"])

    def with_smtp(self, user):
        """``user``'s saved settings with the SMTP server (and the password saved for both)."""
        user.write(
            {
                "mailbox_smtp_host": "localhost",
                "mailbox_smtp_port": self.smtp.ssl_port,
                "mailbox_password": PASSWORDS[user.mailbox_email],
            }
        )

    def newcomer(self):
        """A recruiter without a mailbox yet."""
        return new_test_user(
            self.env,
            login="cleo",
            email="cleo@recruit.example.test",
            groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
        )

    def test_configure_opens_on_the_saved_settings_and_keeps_the_saved_password(self):
        self.with_smtp(self.anna)
        self.anna.action_mailbox_activate()
        setup = self.configure(self.anna)
        self.assertEqual(setup.step, "settings")
        self.assertEqual(
            (setup.email, setup.provider, setup.login),
            (ANNA, "other", ANNA),
        )
        self.assertEqual(
            (setup.imap_host, setup.imap_port, setup.imap_security, setup.smtp_host, setup.smtp_port),
            ("localhost", self.imap.ssl_port, "ssl", "localhost", self.smtp.ssl_port),
        )
        screen = seen(setup)
        self.assertTrue({"email", "provider", "login", "password", "imap_host", "smtp_host"} <= screen.fields)
        self.assertIn("Your saved password is kept: type a new one only if it changed.", screen.text)
        self.assertNotIn("These settings point to another mailbox", screen.text)
        self.assertEqual(screen.highlighted, ["Test connection"])

        # Nothing typed: tested and saved with the saved password, which stays.
        setup.action_test()
        self.assertIn("IMAP: signed in", setup.test_result)
        self.assertIn("SMTP: signed in", setup.test_result)
        self.assertEqual(seen(setup).highlighted, ["Save"])
        action = setup.action_save()
        self.assertEqual(action["params"]["message"], "Settings saved. Your mailbox goes on logging mail.")
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])

        # Only the password changed: only the password changes.
        setup = self.configure(self.anna)
        setup.password = "new-Secret"
        setup.action_save()
        self.assertEqual(self.saved_password(self.anna), "new-Secret")
        self.assertEqual(
            (self.anna.mailbox_imap_host, self.anna.mailbox_imap_port, self.anna.mailbox_smtp_port),
            ("localhost", self.imap.ssl_port, self.smtp.ssl_port),
        )
        self.assertEqual(self.anna.mailbox_state, "active")

        # Another server: the saved password does not go there, and the form no longer says it is kept.
        setup = self.configure(self.anna)
        setup.imap_port = self.imap.ssl_port + 1
        self.assertNotIn("Your saved password is kept", seen(setup).text)

    def test_the_other_mailbox_warning_shows_only_for_another_mailbox(self):
        self.anna.action_mailbox_activate()
        warning = "These settings point to another mailbox"
        setup = self.configure(self.anna)
        setup.login = ANNA.upper()
        self.assertNotIn(warning, seen(setup).text, "the same login, however written")
        # Nothing found for a mistyped address: nothing points anywhere yet.
        setup.action_back()
        setup.email = "anna@unknown.example.test"
        setup.action_detect()
        self.assertEqual((setup.step, setup.imap_host), ("settings", False))
        self.assertNotIn(warning, seen(setup).text)
        setup.imap_host = "127.0.0.1"
        self.assertIn(warning, seen(setup).text)
        self.assertIn("stop_logging_confirmed", seen(setup).fields)

    def test_configure_names_the_provider_of_the_saved_servers(self):
        cases = [
            (ANNA, "imap.gmail.com", "gmail"),
            ("anna@hotmail.com", "outlook.office365.com", "outlook"),
            (ANNA, "outlook.office365.com", "office365"),
            (ANNA, "imap.mail.me.com", "icloud"),
            (ANNA, "mail.recruit.example.test", "other"),
        ]
        for address, host, provider in cases:
            with self.subTest(host=host, address=address):
                self.anna.write({"mailbox_email": address, "mailbox_imap_host": host})
                setup = self.configure(self.anna)
                self.assertEqual((setup.step, setup.email, setup.provider), ("settings", address, provider))

    def test_back_goes_back_whatever_the_form_holds(self):
        setup = self.setup_for(self.newcomer(), email="cleo@unknown.example.test")
        self.assertEqual(setup.step, "provider")
        setup.action_detect()
        self.assertEqual((setup.step, setup.imap_host), ("settings", False))
        # The browser saves the form before Back: nothing in it may stop that.
        screen = seen(setup)
        self.assertIn(("Back", False), screen.buttons)
        self.assertEqual(screen.invalid, [])
        setup.write({"imap_host": "localhost", "imap_port": 143})  # a port that goes with STARTTLS
        self.assertEqual(seen(setup).invalid, [])
        setup.action_back()
        self.assertEqual((setup.step, setup.imap_host, setup.imap_port), ("provider", False, 993))
        # The address corrected, the settings are found.
        setup.email = "cleo@recruit.example.test"
        setup.action_detect()
        self.assertEqual((setup.step, setup.imap_host), ("detected", "localhost"))
        # Test connection and Save still ask for what is missing.
        setup.write({"step": "settings", "imap_host": False})
        for action in (setup.action_test, setup.action_save):
            with self.assertRaisesRegex(UserError, "Fill in at least the login and the IMAP server"):
                action()

    def test_after_a_failed_test_save_is_no_longer_the_way_on_and_says_so(self):
        self.with_smtp(self.anna)
        self.anna.action_mailbox_activate()
        setup = self.configure(self.anna)
        setup.password = "wrong-Secret"
        setup.action_test()
        self.assertIn("IMAP: The mail server refused the login name or password", setup.test_result)
        screen = seen(setup)
        self.assertEqual(screen.highlighted, ["Test connection"])
        self.assertIn(("Save anyway", False), screen.buttons)
        self.assertNotIn(("Save", False), screen.buttons)
        self.assertIn("These settings did not work in the connection test", screen.text)
        action = setup.action_save()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertEqual(
            action["params"]["message"],
            "Settings saved, but they did not work in the connection test: your mailbox will report the "
            "problem at its next run, and logs no mail until it is solved.",
        )

        # Corrected and tested: Save leads again, and the warning is gone.
        setup = self.configure(self.anna)
        setup.password = "wrong-Secret"
        setup.action_test()
        setup.password = PASSWORDS[ANNA]
        self.assertNotIn("did not work", seen(setup).text, "other settings: the failed test is past")
        setup.action_test()
        screen = seen(setup)
        self.assertEqual(screen.highlighted, ["Save"])
        self.assertNotIn("did not work", screen.text)
        self.assertEqual(setup.action_save()["params"]["type"], "success")

        # Not active: no promise of logging either, nor "now click Activate".
        setup = self.configure(self.bert)
        setup.password = "wrong-Secret"
        setup.action_test()
        self.assertEqual(
            setup.action_save()["params"]["message"],
            "Settings saved, but they did not work in the connection test: correct them before you click "
            "Activate.",
        )

    def test_earlier_mail_is_chosen_only_before_activation(self):
        said = "Earlier mail is chosen when a mailbox is activated."
        setup = self.configure(self.anna)
        self.assertIn("history", seen(setup).fields)
        self.assertNotIn(said, seen(setup).text)
        setup.history = "90"
        setup.action_save()
        self.assertEqual(self.anna.mailbox_history, "90")

        self.anna.action_mailbox_activate()
        history_from = self.anna.mailbox_folder_ids.mapped("history_from")
        setup = self.configure(self.anna)
        self.assertNotIn("history", seen(setup).fields)
        self.assertIn(said, seen(setup).text)
        setup.history = "365"
        setup.action_save()
        self.assertEqual(self.anna.mailbox_history, "90", "not offered, not changed")
        self.assertEqual(self.anna.mailbox_folder_ids.mapped("history_from"), history_from)

        # Settings of another mailbox stop this one: the next activation reads earlier mail again.
        setup = self.configure(self.anna)
        setup.imap_host = "127.0.0.1"
        self.assertIn("history", seen(setup).fields)

    def test_the_address_is_checked_before_anything_is_looked_up_or_saved(self):
        cleo = self.newcomer()
        too_long = "c" * 65 + "@recruit.example.test"
        setup = self.setup_for(cleo, email=too_long)
        with self.assertRaisesRegex(UserError, "the part before the @ is longer than 64 characters"):
            setup.action_detect()
        self.assertEqual((setup.step, setup.detection_log), ("provider", False))
        setup.write({"step": "settings", "login": "cleo", "imap_host": "localhost", "password": "x"})
        with self.assertRaisesRegex(UserError, "longer than 64 characters"):
            setup.action_save()
        self.assertFalse(cleo.mailbox_email)
        setup.write({"email": "c" * 64 + "@recruit.example.test", "step": "provider"})
        setup.action_detect()
        self.assertEqual(setup.step, "detected")

        refused = {
            "cleo@-recruit.example.test": "-recruit.example.test is not a domain name",
            "cleo@recruit_example.test": "recruit_example.test is not a domain name",
            "cleo@" + "r" * 64 + ".example.test": "is not a domain name",
            "cleo@recruit": "is not one mail address",
            "Cleo <cleo@recruit.example.test>": "is not one mail address",
        }
        for address, message in refused.items():
            with self.subTest(address=address), self.assertRaisesRegex(UserError, message):
                setup.write({"email": address, "step": "provider"})
                setup.action_detect()

        # A domain in other letters than ASCII is shown as typed.
        setup.write({"email": "cleo@bücher.example.test", "step": "provider"})
        setup.action_detect()
        self.assertIn("bücher.example.test", setup.detection_log)
        self.assertNotIn("xn--", setup.detection_log)

    def test_outlook_without_sign_in_leads_to_the_administrator_not_to_a_password(self):
        setup = self.setup_for(self.newcomer())
        for provider in ("outlook", "office365"):
            with self.subTest(provider=provider):
                setup.provider = provider
                self.assertFalse(setup.sign_in_with)
                self.assertIn(
                    "Outlook.com and Microsoft 365 mailboxes are connected by signing in with Microsoft, "
                    "which an administrator must first set up in this Odoo",
                    setup.provider_note,
                )
                self.assertIn("a password cannot be used instead", setup.provider_note)
                screen = seen(setup)
                self.assertIn("provider_note", screen.fields)
                self.assertEqual(screen.buttons, [("Cancel", False)], "no Next to a password prompt")
                with self.assertRaisesRegex(UserError, "ask your administrator"):
                    setup.action_detect()
                self.assertEqual((setup.step, setup.detection_log), ("provider", False))

    def test_a_microsoft_address_under_other_signs_in_and_asks_no_password(self):
        cleo = self.newcomer()
        for address, provider in (
            ("cleo@hotmail.com", "outlook"),
            ("cleo@contoso.example.test", "office365"),
        ):
            with self.subTest(address=address):
                setup = self.setup_for(cleo, email=address, provider="other")
                setup.action_detect()
                self.assertEqual((setup.step, setup.provider, setup.imap_host), ("provider", provider, False))
                self.assertIn("a password cannot be used instead", setup.provider_note)
                self.assertEqual(seen(setup).buttons, [("Cancel", False)], "no Next to a password prompt")
        # Signing in set up: Sign in with Microsoft, as under Outlook.com.
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("microsoft_outlook_client_id", "id")
        params.set_param("microsoft_outlook_client_secret", "secret")
        setup = self.setup_for(cleo, email="cleo@contoso.example.test", provider="exchange")
        setup.action_detect()
        self.assertEqual(
            (setup.step, setup.provider, setup.sign_in_with), ("provider", "office365", "microsoft")
        )
        self.assertEqual(seen(setup).buttons, [("Sign in with Microsoft", True), ("Cancel", False)])
        # Typed in the browser, an Outlook.com address chooses Outlook.com at once.
        with Form(self.env["cats_mail_sync.setup"].with_user(cleo)) as form:
            form.provider = "other"
            form.email = "Cleo@Outlook.com"
            self.assertEqual(form.provider, "outlook")
            form.email = "cleo@recruit.example.test"
            form.provider = "other"
            self.assertEqual(form.provider, "other")


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
        # contoso.example.test's mail is received by Microsoft 365.
        microsoft = {"contoso.example.test": [("MX", "0 contoso-example-test.mail.protection.outlook.com.")]}
        cls.dns = DnsServer({**srv_records(cls.imap.ssl_port, cls.smtp.ssl_port), **microsoft}).__enter__()
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
        cls.candidate = series.new_person(
            cls.env, {"partner_name": "Carla", "email_from": "carla@example.com"}
        )

    def discovery_here(self):
        """Detection against the local DNS, HTTPS and mail servers."""
        options = {
            "resolver": self.dns.resolver(),
            "ca_file": self.imap.ca_file,
            "timeout": 1.0,
            "allow_private": True,
        }
        return patch.object(wizard_class(self.env), "_discovery_options", lambda _self: options)

    def test_recruiter_sets_up_the_mailbox_in_the_browser_then_mail_leaves_through_their_smtp(self):
        self.assertFalse(self.tess.has_group("base.group_system"))
        with self.discovery_here():
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

    def logging_mailbox(self):
        """Tess's mailbox, saved and logging."""
        self.tess.write(
            {
                "mailbox_email": TESS,
                "mailbox_login": TESS,
                "mailbox_imap_host": "localhost",
                "mailbox_imap_port": self.imap.ssl_port,
                "mailbox_smtp_host": "localhost",
                "mailbox_smtp_port": self.smtp.ssl_port,
                "mailbox_password": TESS_PASSWORD,
            }
        )
        self.tess.action_mailbox_activate()
        self.assertEqual(self.tess.mailbox_state, "active")

    def saved_password(self):
        return self.env["cats_mail_sync.credentials"]._password(self.tess)

    def test_recruiter_changes_only_her_password(self):
        self.logging_mailbox()
        # Her mail server's password changed since she saved hers.
        self.env["cats_mail_sync.credentials"]._save_password(self.tess, "tess-Old-Secret")
        self.start_tour("/odoo", "cats_mail_sync_change_password_tour", login="tess", timeout=120)
        self.assertEqual(self.saved_password(), TESS_PASSWORD)
        self.assertEqual(
            (
                self.tess.mailbox_imap_host,
                self.tess.mailbox_imap_port,
                self.tess.mailbox_smtp_host,
                self.tess.mailbox_smtp_port,
            ),
            ("localhost", self.imap.ssl_port, "localhost", self.smtp.ssl_port),
        )
        self.assertEqual(self.tess.mailbox_state, "active")

    def test_recruiter_saves_settings_that_failed_the_test(self):
        self.logging_mailbox()
        self.start_tour("/odoo", "cats_mail_sync_failed_test_tour", login="tess", timeout=120)
        self.assertEqual(self.saved_password(), "not-her-password", "saved anyway, as she chose")

    def test_recruiter_goes_back_after_nothing_was_found(self):
        with self.discovery_here():
            self.start_tour(
                "/odoo", "cats_mail_sync_back_after_nothing_found_tour", login="tess", timeout=120
            )
        setup = self.env["cats_mail_sync.setup"].search(
            [("user_id", "=", self.tess.id)], order="id desc", limit=1
        )
        self.assertEqual((setup.email, setup.step, setup.imap_host), (TESS, "detected", "localhost"))
