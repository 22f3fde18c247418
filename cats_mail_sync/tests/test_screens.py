import datetime
from types import SimpleNamespace

import polib
from lxml import etree

from odoo import fields
from odoo.tests import TransactionCase, new_test_user, tagged

from ..mailbox_client import errors
from ..models.cats_mail_sync_sync import Tally
from .test_translation import I18N


@tagged("post_install", "-at_install")
class TestScreens(TransactionCase):
    """What the screens show, in the user's own words and formats."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("nl_NL")
        cls.env["ir.module.module"]._load_module_terms(["cats_mail_sync"], ["nl_NL"], overwrite=True)
        cls.recruiter = new_test_user(
            cls.env, login="rita", tz="Europe/Amsterdam", lang="nl_NL", groups="base.group_user"
        )
        cls.sync_run = cls.env["cats_mail_sync.run"].create(
            {
                "user_id": cls.recruiter.id,
                "started_at": datetime.datetime(2026, 12, 5, 8, 30),
                "folders": "INBOX, Verzonden items",
            }
        )

    def test_a_run_is_titled_in_the_user_s_date_format_and_says_inbox(self):
        run = self.sync_run.with_user(self.recruiter).with_context(lang="nl_NL", tz="Europe/Amsterdam")
        self.assertEqual(run.display_name, "Synchronisatie van 05-12-2026 09:30:00")
        self.assertEqual(run.folders_label, "Postvak IN, Verzonden items")
        english = self.sync_run.with_context(lang="en_US", tz="UTC")
        lang = self.env["res.lang"]._lang_get("en_US")  # 12/05/2026 08:30:00 on Odoo 18, with AM on 19
        at = datetime.datetime(2026, 12, 5, 8, 30).strftime(f"{lang.date_format} {lang.time_format}")
        self.assertEqual(english.display_name, f"Synchronization of {at}")
        self.assertEqual(english.folders_label, "Inbox, Verzonden items")

    def test_a_run_s_form_lines_up_in_two_columns_of_titled_sections(self):
        form = etree.fromstring(
            self.env["cats_mail_sync.run"].with_context(lang="nl_NL").get_view(view_type="form")["arch"]
        )
        # One group per column: each lines its labels up in one column of its own (groups stacked
        # in a column, or a grid of four, line up neither labels nor rows).
        columns = form.xpath("//sheet/group/group")
        self.assertEqual(len(columns), 2)
        self.assertFalse(form.xpath("//sheet/group/group//group"))
        self.assertEqual(len(form.xpath("//sheet/group")), 1)
        # Every count is in a titled section: Synchronization (In all), New mail, Looking back.
        sections = []
        for column in columns:
            sections.append(column.get("string"))
            for node in column:
                if node.tag == "separator":
                    sections.append(node.get("string"))
                elif node.tag == "field" and node.get("name") not in (
                    "user_id",
                    "started_at",
                    "duration",
                    "folders_label",
                    "unexpected",
                ):
                    self.assertTrue(node.get("string"), node.get("name"))
        self.assertEqual(sections, ["Synchronisatie", "In totaal", "Nieuwe mail", "Terugzoeken"])

    def test_what_a_run_says_is_read_in_the_reader_s_language(self):
        # The run is made in English (its recruiter's, or the scheduled run's, language); a Dutch
        # administrator reads it in Dutch, and an English reader in English.
        dutch = {entry.msgid: entry.msgstr for entry in polib.pofile(str(I18N / "nl.po"))}
        emma = new_test_user(self.env, login="emma", lang="en_US", groups="base.group_user")
        folder = self.env["cats_mail_sync.folder"].create(
            {
                "user_id": emma.id,
                "role": "inbox",
                "name": "INBOX",
                "uidvalidity": 1,
                "last_uid": 9,
                "synced_at": fields.Datetime.now(),
                "history_from": datetime.datetime(2026, 11, 7, 9, 0),
            }
        )
        sync = self.env["cats_mail_sync.sync"]
        tally = Tally(folders=["INBOX"], looked_at=1)
        gone = SimpleNamespace(message_id="<gone@x>", received=None)
        sync._log_found(emma, folder, {7: (gone, [], None)}, {}, tally)
        tally.history_done.append(self.env["cats_mail_sync.look_back_sync"]._history_done(folder))
        sync._failed(emma, errors.ServerUnreachable(host="imap.example.nl", port=993), tally)
        sync._record(emma, tally, fields.Datetime.now(), 1.0)
        run = self.env["cats_mail_sync.run"].search([("user_id", "=", emma.id)])

        in_dutch = run.with_context(lang="nl_NL")
        unreachable = dutch[errors.ServerUnreachable.message] % {"host": "imap.example.nl", "port": 993}
        self.assertEqual(in_dutch.error_shown, unreachable)
        history = dutch["%(folder)s: earlier mail back to %(since)s is logged."]
        self.assertEqual(in_dutch.look_back_info, history % {"folder": "Postvak IN", "since": "07-11-2026"})
        self.assertEqual(in_dutch.skipped_ids.reason_shown, dutch["deleted before it could be read"])
        in_english = run.with_context(lang="en_US")
        self.assertEqual(
            in_english.error_shown, errors.ServerUnreachable(host="imap.example.nl", port=993).args[0]
        )
        self.assertEqual(in_english.look_back_info, "Inbox: earlier mail back to 11/07/2026 is logged.")
        self.assertEqual(in_english.skipped_ids.reason_shown, "deleted before it could be read")
        # The run keeps its texts in English too (the server's words), as runs did before.
        self.assertTrue(run.error.startswith("No mail server answered at imap.example.nl on port 993."))
        self.assertEqual(run.look_back_done, "INBOX: earlier mail back to 2026-11-07 is logged.")

        # A run recorded before its sentences were kept reads as it was written.
        older = self.env["cats_mail_sync.run"].create(
            {"user_id": emma.id, "error": "Er antwoordde geen mailserver.", "look_back_note": "INBOX: ..."}
        )
        older = older.with_context(lang="en_US")
        self.assertEqual(
            (older.error_shown, older.look_back_warning), ("Er antwoordde geen mailserver.", "Inbox: ...")
        )

    def test_an_unconfigured_profile_claims_nothing_stored(self):
        view = self.env.ref("base.view_users_form_simple_modif")
        arch = self.env["res.users"].with_user(self.recruiter).get_view(view.id)["arch"]
        # The "Stored" placeholder only where something is stored; ports only with a server.
        stored = arch.split('name="cats_mail_sync_password_stored"')[1][:200]
        self.assertIn("mailbox_state == 'not_configured'", stored)
        self.assertNotIn("Stored; type to replace", arch)
        self.assertIn('invisible="not mailbox_imap_host"', arch)
        self.assertIn("action_mailbox_confirm_again", arch)
        self.assertEqual(self.recruiter.mailbox_state, "not_configured")

    def test_settings_say_whether_the_listener_runs_as_they_open(self):
        def shown():
            spec = {"cats_mail_sync_listen": {}, "cats_mail_sync_listener": {}}
            return self.env["res.config.settings"].onchange({}, [], spec)["value"]["cats_mail_sync_listener"]

        self.env["cats_mail_sync.listener"].search([]).unlink()
        self.assertEqual(shown(), "Not running: start odoo cats_mail_sync_listen (see the README)")
        now = fields.Datetime.now()
        self.env["cats_mail_sync.listener"].create(
            {"name": "odoo1:4242", "started_at": now, "seen_at": now, "holding": True, "connections": 12}
        )
        self.assertEqual(shown(), "Running on odoo1:4242. Connections held: 12.")

    def test_settings_show_what_to_register_without_custom_email_servers(self):
        arch = etree.fromstring(self.env["res.config.settings"].get_view()["arch"])
        [block] = arch.xpath("//setting[@id='cats_mail_sync_sign_in']")
        hidden = [e.get("invisible") for e in block.iterancestors() if e.get("invisible")]
        self.assertFalse([cond for cond in hidden if "external_email_server_default" in cond])
        names = [field.get("name") for field in block.iter("field")]
        self.assertEqual(
            names,
            [
                "cats_mail_sync_redirect_uri",
                "cats_mail_sync_microsoft_scopes",
                "cats_mail_sync_microsoft_tenant",
                "cats_mail_sync_google_scopes",
            ],
        )
        # Each value on its own labelled row: nothing drawn over another.
        for field in block.iter("field"):
            row = field.getparent()
            self.assertIn("row", row.get("class"))
            self.assertEqual(len(row.xpath("./field")), 1)
            self.assertEqual(len(row.xpath("./label")), 1)
