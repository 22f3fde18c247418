from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from ..models.res_users import MAILBOX_READABLE_FIELDS
from .common import ANNA, PASSWORDS, MailboxCase


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
        anna.write({"mailbox_password": PASSWORDS[ANNA], "mailbox_imap_port": self.dovecot.ssl_port})
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
        for xmlid in ("base.view_users_form_simple_modif", "hr.res_users_view_form_profile"):
            arch = users.get_views([(self.env.ref(xmlid).id, "form")])["views"]["form"]["arch"]
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
        self.assertEqual(self.anna.sudo()._mailbox_secret(), "typed-just-now")
