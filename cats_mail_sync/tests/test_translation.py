from pathlib import Path

import polib

from odoo.tests import TransactionCase, tagged

from ..mailbox_client import errors

I18N = Path(__file__).resolve().parents[1] / "i18n"


@tagged("post_install", "-at_install")
class TestDutch(TransactionCase):
    """The product speaks Dutch: the translation loads and covers every term."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("nl_NL")
        cls.env["ir.module.module"]._load_module_terms(["cats_mail_sync"], ["nl_NL"], overwrite=True)
        cls.dutch = {entry.msgid: entry.msgstr for entry in polib.pofile(str(I18N / "nl.po"))}
        cls.nl = cls.env(context={"lang": "nl_NL"})

    def test_every_term_of_the_template_is_translated(self):
        template = {entry.msgid for entry in polib.pofile(str(I18N / "cats_mail_sync.pot"))}
        self.assertTrue(template)
        missing = sorted(msgid for msgid in template if not self.dutch.get(msgid))
        self.assertEqual(missing, [])

    def test_setup_assistant_speaks_dutch(self):
        setup = self.env["cats_mail_sync.setup"]
        names = ["email", "provider", "imap_host", "test_result"]
        in_dutch = self.nl["cats_mail_sync.setup"].fields_get(names)
        for name in names:
            self.assertEqual(in_dutch[name]["string"], self.dutch[setup._fields[name].string], name)
        view = self.env.ref("cats_mail_sync.cats_mail_sync_setup_view_form")
        arch = self.nl["cats_mail_sync.setup"].get_view(view.id)["arch"]
        for term in ("Test connection", "Configure your mailbox", "What was tried to find your settings"):
            self.assertIn(self.dutch[term], arch)
            self.assertNotEqual(self.dutch[term], term)

    def test_errors_reach_a_dutch_recruiter_in_dutch(self):
        user = self.env["res.users"].create({"name": "Daan", "login": "daan", "lang": "nl_NL"})
        for error in (errors.AuthenticationFailed, errors.SecretNotForServer):
            message = user._mailbox_explain(error())
            self.assertEqual(message, self.dutch[error.message])
            self.assertNotEqual(message, error.message)
        unreachable = user._mailbox_explain(errors.ServerUnreachable(host="imap.example.nl", port=993))
        self.assertEqual(
            unreachable,
            self.dutch[errors.ServerUnreachable.message] % {"host": "imap.example.nl", "port": 993},
        )
