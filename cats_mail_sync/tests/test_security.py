import socket
from unittest.mock import patch

from odoo import modules
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from .. import series
from ..models.res_users import MAILBOX_READABLE_FIELDS
from .common import ANNA, BERT, PASSWORDS, MailboxCase
from .harness.dovecot import free_port


@tagged("post_install", "-at_install")
class TestSecurity(MailboxCase):
    def test_nobody_can_read_the_password(self):
        colleague = new_test_user(self.env, login="colleague", groups="base.group_user")
        with self.assertRaises(AccessError):
            self.anna.with_user(colleague).read(["mailbox_password"])
        for reader in (self.anna, self.env.ref("base.user_admin")):
            values = self.anna.with_user(reader).read(["mailbox_password"])[0]
            self.assertFalse(values["mailbox_password"], reader.login)
        own_view = self.anna.with_user(self.anna).read(sorted(MAILBOX_READABLE_FIELDS))
        self.assertNotIn(PASSWORDS[ANNA], str(own_view))
        self.assertNotIn("cats_mailbox_password", self.env["res.users"].fields_get())
        # and yet the mailbox can log in with it
        self.anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "active")

    def test_recruiter_manages_own_mailbox_without_admin_rights(self):
        anna = self.anna.with_user(self.anna)
        anna.write({"mailbox_password": PASSWORDS[ANNA], "mailbox_imap_port": self.imap.ssl_port})
        anna.action_mailbox_activate()
        self.assertEqual(anna.mailbox_state, "active")
        self.assertEqual(anna.read(["mailbox_state"])[0]["mailbox_state"], "active")
        anna.action_mailbox_deactivate()
        self.assertEqual(self.anna.mailbox_state, "inactive")

    def test_recruiter_cannot_touch_another_mailbox(self):
        bert_as_anna = self.bert.with_user(self.anna)
        with self.assertRaises(AccessError):
            bert_as_anna.action_mailbox_activate()
        with self.assertRaises(AccessError):
            bert_as_anna.write({"mailbox_password": "hijack"})
        with self.assertRaises(AccessError):
            bert_as_anna.read(["mailbox_imap_host"])
        self.bert.action_mailbox_activate()
        self.assertFalse(self.env["cats_mail_sync.folder"].with_user(self.anna).search([]))

    def test_admin_provisions_a_mailbox_by_rpc_fields(self):
        admin = self.env.ref("base.user_admin")
        self.anna.with_user(admin).write(self.settings_for(ANNA))
        self.anna.with_user(admin).action_mailbox_activate()
        state = self.anna.with_user(admin).read(["mailbox_state", "mailbox_activated_at", "mailbox_error"])[0]
        self.assertEqual(state["mailbox_state"], "active")
        self.assertTrue(state["mailbox_activated_at"])

    def test_email_tab_on_both_profile_forms_of_a_recruiter(self):
        users = self.env["res.users"].with_user(self.anna)
        # Preferences, and hr's My Profile (My Preferences on Odoo 19): the view its action opens.
        for view in (
            self.env.ref("base.view_users_form_simple_modif"),
            self.env.ref("hr.res_users_action_my").view_id,
        ):
            xmlid = view.xml_id
            arch = users.get_views([(view.id, "form")])["views"]["form"]["arch"]
            for name in (
                "mailbox_state",
                "mailbox_error",
                "mailbox_last_sync_at",
                "mailbox_logged_count",
                "action_mailbox_configure",
                "action_mailbox_activate",
                "action_mailbox_sync",
                "action_mailbox_deactivate",
            ):
                self.assertIn(f'name="{name}"', arch, f"{name} on {xmlid}")

    def test_saving_the_profile_does_not_send_the_password_back(self):
        saved = self.anna.with_user(self.anna).web_save(
            {"mailbox_password": "typed-just-now"}, {"mailbox_password": {}, "mailbox_state": {}}
        )
        self.assertFalse(saved[0]["mailbox_password"])
        self.assertEqual(self.saved_password(self.anna), "typed-just-now")


@tagged("post_install", "-at_install")
class TestTheAddressIsYourOwn(MailboxCase):
    def test_hostile_addresses_are_refused(self):
        anna = self.anna.with_user(self.anna)
        hostile = [
            "boss@recruit.example.test,recruit.example.test",
            "recruit.example.test",
            "@recruit.example.test",
            "Boss <boss@recruit.example.test>",
            "a@recruit.example.test; b@recruit.example.test",
            "anna@recruit.example.test\nbcc@evil.example",
            BERT,  # a colleague's
            BERT.upper(),
            self.env.company.email or "",
        ]
        self.env.company.email = "info@recruit.example.test"
        hostile[-1] = "info@recruit.example.test"
        for value in hostile:
            with self.subTest(value=value), self.assertRaises(ValidationError), self.env.cr.savepoint():
                anna.write({"mailbox_email": value})
        anna.write({"mailbox_email": "  Anna@Recruit.Example.Test "})
        self.assertEqual(self.anna.mailbox_email, ANNA)

    def test_a_recruiter_s_server_carries_only_their_own_mail(self):
        self.anna.write(
            {"mailbox_smtp_host": "localhost", "mailbox_smtp_port": 465, "mailbox_password": PASSWORDS[ANNA]}
        )
        self.anna.action_mailbox_activate()
        self.env["ir.mail_server"]._cats_mail_sync_update(self.anna)
        self.assertFalse(self.anna.mailbox_mail_server_id.active, "not before the address is proven")
        self.anna.write({"mailbox_email_confirmed": True})
        self.env["ir.mail_server"]._cats_mail_sync_update(self.anna)
        server = self.anna.mailbox_mail_server_id
        self.assertTrue(server.active)
        self.env["ir.mail_server"].search([("id", "!=", server.id)]).active = False
        servers = self.env["ir.mail_server"]
        self.assertEqual(servers._find_mail_server(ANNA)[0], server)
        for sender in (BERT, "boss@recruit.example.test", "notifications@recruit.example.test", False):
            found = servers._find_mail_server(sender)[0]
            self.assertNotEqual(found, server, f"{sender} must not leave through Anna's server")
        with patch.object(modules.module, "current_test", False), self.assertRaises(MailDeliveryException):
            getattr(servers, series.SMTP_CONNECT)(mail_server_id=server.id, smtp_from=BERT)


@tagged("post_install", "-at_install")
class TestNoSecretOverAnyRoute(MailboxCase):
    SECRET = "Typed-Secret-9876"

    def assertNoSecret(self, call):
        try:
            result = call()
        except (AccessError, UserError):
            return
        self.assertNotIn(self.SECRET, repr(result))

    def test_the_password_reads_back_nowhere(self):
        self.anna.write({"mailbox_password": self.SECRET})
        colleague = new_test_user(self.env, login="colleague", groups="base.group_user")
        portal = new_test_user(self.env, login="cats_portal", groups="base.group_portal")
        for who in (self.anna, colleague, portal, self.env.ref("base.user_admin")):
            users = self.env["res.users"].with_user(who)
            anna = self.anna.with_user(who)
            routes = {
                "read": lambda anna=anna: anna.read(["mailbox_password", "mailbox_login"]),
                "search_read": lambda users=users: users.search_read([("id", "=", self.anna.id)]),
                "web_read": lambda anna=anna: anna.web_read({"mailbox_password": {}}),
                "web_search_read": lambda users=users: users.web_search_read(
                    [("id", "=", self.anna.id)], {"mailbox_password": {}, "mailbox_state": {}}
                ),
                "export_data": lambda anna=anna: anna.export_data(["mailbox_password", "mailbox_login"]),
                "onchange": lambda anna=anna: anna.onchange(
                    {"mailbox_login": "x"}, ["mailbox_login"], {"mailbox_password": {}, "mailbox_login": {}}
                ),
                "fields_get": lambda users=users: users.fields_get(),
                "default_get": lambda users=users: users.default_get(["mailbox_password"]),
            }
            for name, call in routes.items():
                with self.subTest(user=who.login, route=name):
                    self.assertNoSecret(call)
        self.assertEqual(self.saved_password(self.anna), self.SECRET)

    def test_the_assistant_is_its_creator_s_alone_and_never_sends_the_password_back(self):
        setup = self.env["cats_mail_sync.setup"].with_user(self.anna).create({"email": ANNA})
        saved = setup.web_save({"password": self.SECRET}, {"password": {}, "email": {}})
        self.assertNotIn(self.SECRET, repr(saved))
        self.assertNotIn(self.SECRET, repr(setup.read()))
        self.assertNotIn(self.SECRET, repr(setup.web_read({"password": {}})))
        self.assertEqual(setup._password(), self.SECRET)
        self.env.cr.execute("SELECT cats_password FROM cats_mail_sync_setup WHERE id = %s", [setup.id])
        self.assertNotIn(self.SECRET, self.env.cr.fetchone()[0], "kept encrypted")

        colleague = new_test_user(self.env, login="colleague", groups="base.group_user")
        setups = self.env["cats_mail_sync.setup"].with_user(colleague)
        self.assertFalse(setups.search([]))
        with self.assertRaises(AccessError):
            setup.with_user(colleague).read(["email"])
        with self.assertRaises(AccessError):
            setup.with_user(colleague).write({"imap_host": "evil.example"})
        with self.assertRaises(AccessError):
            setup.with_user(colleague).action_test()

        # Typed passwords are forgotten once no longer needed.
        self.env.cr.execute(
            "UPDATE cats_mail_sync_setup SET write_date = now() - interval '2 hours' WHERE id = %s",
            [setup.id],
        )
        self.env["cats_mail_sync.setup"]._forget_old_passwords()
        self.assertFalse(self.env["cats_mail_sync.secret"]._has(setup, "cats_password"))


@tagged("post_install", "-at_install")
class TestNoProbingOfTheNetwork(MailboxCase):
    def assistant(self, user, **values):
        """An assistant of ``user``'s, with a password typed and IMAP settings."""
        values = {"email": user.email, "login": user.email, "password": "x", "imap_security": "ssl", **values}
        return self.env["cats_mail_sync.setup"].with_user(user).create(values)

    def test_private_hosts_are_refused_unless_an_administrator_allows_them(self):
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.allow_private_hosts", "False")
        with self.assertRaisesRegex(UserError, "private or local network"):
            self.anna.action_mailbox_activate()
        setup = self.assistant(self.anna, password=PASSWORDS[ANNA], imap_host="127.0.0.1", imap_port=22)
        setup.action_test()
        self.assertIn("private or local network", setup.test_result)
        # Or only the hosts an administrator named (an upgrade names those already in use).
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("cats_mail_sync.allow_private_hosts", "imap.internal.example, LOCALHOST.")
        self.anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "active")
        setup.action_test()
        self.assertIn("private or local network", setup.test_result, "127.0.0.1 is not named")

    def test_an_open_port_and_a_closed_one_look_the_same(self):
        setup = self.assistant(self.anna, imap_host="localhost")
        texts = []
        with socket.socket() as listening:  # an open port that speaks no mail
            listening.bind(("127.0.0.1", 0))
            listening.listen()
            for port in (listening.getsockname()[1], free_port()):
                setup.write({"imap_port": port, "password": "x"})
                setup.action_test()
                texts.append(setup.test_result.replace(str(port), "PORT"))
        self.assertEqual(texts[0], texts[1])

    def test_tries_are_limited_per_user(self):
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.tries_per_hour", "2")
        setup = self.assistant(self.anna, imap_host="localhost", imap_port=free_port())
        setup.action_test()
        setup.action_test()
        with self.assertRaisesRegex(UserError, "wait a while"):
            setup.action_test()
        with self.assertRaisesRegex(UserError, "wait a while"):
            setup.action_detect()
        other = self.assistant(self.bert, imap_host="localhost", imap_port=free_port())
        other.action_test()  # Bert has tries of his own

    def test_a_user_cannot_pass_a_note_off_as_mail_logged_from_a_mailbox(self):
        """message_post and mail.message's create and write are RPC methods: a recruiter could
        otherwise post a note "logged from" a colleague's mailbox, and with a real mail's Message-ID
        keep that mail from ever being logged on the record."""
        candidate = self.candidate.with_user(self.anna)
        forged = {"mailbox_user_id": self.bert.id, "message_id": "<real@x>"}
        for values in (forged, {"mailbox_to": "x@example.com"}, {"mailbox_bcc": "x@example.com"}):
            with self.subTest(values=values), self.assertRaises(AccessError):
                candidate.message_post(body="Forged", **values)
        note = candidate.message_post(body="A note")
        with self.assertRaises(AccessError):
            self.env["mail.message"].with_user(self.anna).create(
                {"model": series.PERSON, "res_id": self.candidate.id, "body": "Forged", **forged}
            )
        with self.assertRaises(AccessError):
            note.with_user(self.anna).write({"mailbox_user_id": self.bert.id})
        note.with_user(self.anna).copy()  # as Odoo's own mail code does: no logged-mail field set
        self.assertFalse(self.logged(self.candidate), "no message passes for logged mail")
