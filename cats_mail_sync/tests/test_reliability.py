import time
from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time
from lxml import etree

from odoo import fields
from odoo.tests import new_test_user, tagged

from .. import series
from ..mailbox_client import errors
from ..mailbox_client.reader import MailboxReader
from .common import ANNA, BERT, PASSWORDS, MailboxCase, make_mail
from .harness.dovecot import Dovecot


def raw_mail(subject_header, message_id_header, sender="carla.candidate@example.com"):
    return (
        f"From: {sender}\r\nTo: {ANNA}\r\nSubject: {subject_header}\r\n"
        f"Message-ID: {message_id_header}\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
    ).encode()


@tagged("post_install", "-at_install")
class TestOneBadMailNeverBlocks(MailboxCase):
    def setUp(self):
        super().setUp()
        self.anna.action_mailbox_activate()

    def test_a_nul_in_the_subject_and_a_huge_message_id_are_logged_in_their_safest_form(self):
        self.deliver(self.anna, raw_mail("=?utf-8?b?TlVMIAAgaGVyZQ==?=", "<nul@x>"))  # "NUL \0 here"
        self.deliver(self.anna, raw_mail("Huge id", "<" + "h" * 5000 + "@x>"))
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<after@x>"))
        self.assertEqual(self.sync(self.anna), 3)
        nul = self.logged(self.candidate, "<nul@x>")
        self.assertEqual(len(nul), 1)
        self.assertNotIn("\x00", nul.subject or "")
        self.assertEqual(len(self.logged(self.candidate, "<after@x>")), 1)
        huge = self.logged(self.candidate).filtered(lambda m: m.subject == "Huge id")
        self.assertEqual(len(huge), 1)
        self.assertLess(len(huge.message_id), 300)
        self.assertEqual(self.sync(self.anna), 0, "nothing logged twice")
        self.assertEqual(len(self.logged(self.candidate).filtered(lambda m: m.subject == "Huge id")), 1)

    def test_an_exchange_message_id_that_python_cannot_parse_is_kept_as_it_is(self):
        self.deliver(self.anna, raw_mail("Exchange", "<[1234abcd]@exchange.example>"))
        self.deliver(self.anna, raw_mail("Exchange bare", "<[5678]>"))
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<next@x>"))
        self.assertEqual(self.sync(self.anna), 3)
        self.assertEqual(len(self.logged(self.candidate, "<[1234abcd]@exchange.example>")), 1)
        self.assertEqual(len(self.logged(self.candidate, "<[5678]>")), 1)
        self.assertEqual(len(self.logged(self.candidate, "<next@x>")), 1)

    def test_a_mail_that_cannot_be_logged_at_all_is_skipped_with_its_reason_and_the_run_goes_on(self):
        self.deliver(
            self.anna, make_mail("carla.candidate@example.com", ANNA, subject="Poison", message_id="<p@x>")
        )
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<fine@x>"))
        logger_class = type(self.env["cats_mail_sync.logger"])
        post = logger_class._post

        def refuse_poison(logger, record, values, *args):
            if values["message_id"] == "<p@x>":
                raise ValueError("refused by the database")
            return post(logger, record, values, *args)

        with patch.object(logger_class, "_post", refuse_poison):
            self.assertEqual(self.sync(self.anna), 1)
        self.assertFalse(self.logged(self.candidate, "<p@x>"))
        self.assertEqual(len(self.logged(self.candidate, "<fine@x>")), 1)
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertFalse(self.anna.mailbox_error)
        run = self.env["cats_mail_sync.run"].search([("user_id", "=", self.anna.id)], limit=1)
        self.assertEqual((run.looked_at, run.matched, run.logged, run.skipped), (2, 2, 1, 1))
        self.assertEqual(run.skipped_ids.message_id, "<p@x>")
        self.assertEqual(run.skipped_ids.subject, "Poison")
        self.assertIn("refused by the database", run.skipped_ids.reason)
        # The cursor moved past it: the next run does not stumble on it again.
        self.assertEqual(self.sync(self.anna), 0)

    def test_a_mail_deleted_between_header_and_body_is_skipped(self):
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<gone@x>"))
        with patch.object(MailboxReader, "messages", lambda reader, uids: {}):
            self.assertEqual(self.sync(self.anna), 0)
        run = self.env["cats_mail_sync.run"].search([("user_id", "=", self.anna.id)], limit=1)
        self.assertIn("deleted", run.skipped_ids.reason)
        self.assertEqual(self.anna.mailbox_state, "active")


@tagged("post_install", "-at_install")
class TestStatesThatHeal(MailboxCase):
    def test_activate_after_an_error_continues_from_the_cursor(self):
        self.anna.action_mailbox_activate()
        params = self.env["ir.config_parameter"].sudo()
        ca_file = params.get_param("cats_mail_sync.ca_file")
        params.set_param("cats_mail_sync.ca_file", False)  # the certificate is no longer trusted
        self.run_cron()
        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertIn("not trusted", self.anna.mailbox_error)
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<meanwhile@x>"))
        params.set_param("cats_mail_sync.ca_file", ca_file)
        self.anna.with_user(self.anna).action_mailbox_activate()
        self.sync(self.anna)
        self.assertEqual(len(self.logged(self.candidate, "<meanwhile@x>")), 1, "mail of the error is logged")

    def test_settings_of_another_mailbox_start_afresh_and_say_so(self):
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<old-box@x>"))
        self.anna.write({"mailbox_login": BERT, "mailbox_password": "bert-Secret-43"})
        self.assertEqual(self.anna.mailbox_state, "inactive")
        self.assertIn("another mailbox", self.anna.mailbox_error)
        self.assertFalse(self.anna.mailbox_folder_ids)


@tagged("post_install", "-at_install")
class TestFolderChanges(MailboxCase):
    """On a server whose Sent folder is an ordinary folder (no SPECIAL-USE, not auto-created)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain = Dovecot(PASSWORDS, folders={}).start()
        cls.addClassCleanup(cls.plain.stop)

    def setUp(self):
        super().setUp()
        with self.plain.client(ANNA) as client:
            for name in ("Sent", "Verzonden items"):
                if client.folder_exists(name):
                    client.delete_folder(name)
            client.create_folder("Sent")
        self.anna.write({"mailbox_imap_port": self.plain.ssl_port, "mailbox_password": PASSWORDS[ANNA]})
        self.anna.action_mailbox_activate()

    def test_the_sent_folder_is_found_again_after_a_rename(self):
        with self.plain.client(ANNA) as client:
            client.rename_folder("Sent", "Verzonden items")
        mail = make_mail(ANNA, "carla.candidate@example.com", message_id="<renamed@x>")
        self.plain.append(ANNA, "Verzonden items", mail)
        self.sync(self.anna)
        self.assertEqual(self.anna.mailbox_state, "active")
        sent = self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "sent")
        self.assertEqual(sent.name, "Verzonden items")
        self.assertEqual(len(self.logged(self.candidate, "<renamed@x>")), 1)

    def test_a_folder_that_disappears_is_said_and_the_other_is_still_read(self):
        with self.plain.client(ANNA) as client:
            client.delete_folder("Sent")
        self.plain.append(
            ANNA, "INBOX", make_mail("carla.candidate@example.com", ANNA, message_id="<still@x>")
        )
        self.sync(self.anna)
        self.assertEqual(len(self.logged(self.candidate, "<still@x>")), 1)
        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertIn("Sent is no longer in the mailbox", self.anna.mailbox_error)


@tagged("post_install", "-at_install")
class TestSyncLog(MailboxCase):
    def test_each_run_is_logged_for_the_owner_and_administrators_only(self):
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<counted@x>"))
        self.deliver(self.anna, make_mail("stranger@example.net", ANNA, message_id="<stranger@x>"))
        self.sync(self.anna)
        runs = self.env["cats_mail_sync.run"].with_user(self.anna).search([])
        self.assertEqual(len(runs), 1)
        self.assertEqual((runs.looked_at, runs.matched, runs.logged, runs.skipped), (2, 1, 1, 0))
        self.assertIn("INBOX", runs.folders)
        colleague = new_test_user(self.env, login="colleague", groups="base.group_user")
        self.assertFalse(self.env["cats_mail_sync.run"].with_user(colleague).search([]))
        admin = self.env.ref("base.user_admin")
        self.assertEqual(self.env["cats_mail_sync.run"].with_user(admin).search([]), runs)
        action = self.anna.with_user(self.anna).action_mailbox_runs()
        self.assertEqual(action["domain"], [("user_id", "=", self.anna.id)])

    def last_run(self):
        return self.env["cats_mail_sync.run"].search([("user_id", "=", self.anna.id)], limit=1)

    def test_a_run_that_only_looked_back_read_no_new_mail_and_its_counts_add_up(self):
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("sam@applicants.example.org", ANNA, message_id="<sam@x>"))
        self.assertEqual(self.sync(self.anna), 0)  # nobody knows Sam yet
        series.new_person(self.env, {"partner_name": "Sam", "email_from": "sam@applicants.example.org"})
        self.env.flush_all()
        self.assertEqual(self.sync(self.anna), 1)

        run = self.last_run().with_user(self.anna)
        # The sync log's row, column by column, as the recruiter reads it.
        runs = self.env["cats_mail_sync.run"]
        arch = etree.fromstring(runs.get_views([(False, "list")])["views"]["list"]["arch"])
        labels = runs.fields_get()
        row = {
            column.get("string") or labels[column.get("name")]["string"]: run[column.get("name")]
            for column in arch.iter("field")
            if not column.get("column_invisible") and column.get("optional") != "hide"
        }
        self.assertEqual(
            [
                row.get(label)
                for label in ("New mails", "Matched", "Logged", "Found looking back", "Logged looking back")
            ],
            [0, 0, 0, 1, 1],
        )
        self.assertEqual(run.logged, run.logged_new + run.logged_back)
        self.assertEqual(labels["looked_back_for"]["string"], "Addresses looked back for")

    def test_a_history_logged_to_its_end_is_news_and_names_the_inbox(self):
        earlier = fields.Datetime.now() - timedelta(days=3)
        self.deliver(
            self.anna,
            make_mail("carla.candidate@example.com", ANNA, message_id="<earlier@x>", date=earlier),
            date=earlier,
        )
        self.anna.mailbox_history = "30"
        self.anna.action_mailbox_activate()
        self.sync(self.anna)

        run = self.last_run().with_user(self.anna)
        self.assertIn("INBOX: earlier mail back to", run.look_back_done)  # as the run wrote it
        self.assertTrue(run.look_back_info.startswith("Inbox: earlier mail back to "), run.look_back_info)
        self.assertFalse(run.look_back_warning)
        form = etree.fromstring(self.env["cats_mail_sync.run"].get_view(view_type="form")["arch"])
        [info] = form.xpath("//field[@name='look_back_info']")
        [warning] = form.xpath("//field[@name='look_back_warning']")
        self.assertEqual((info.get("class"), warning.get("class")), ("text-info", "text-warning"))

    def test_a_refused_search_is_a_warning_and_every_note_names_the_inbox(self):
        refused = self.anna._mailbox_explain(errors.SearchRefused(folder="INBOX", reason="too complex"))
        run = self.env["cats_mail_sync.run"].create(
            {
                "user_id": self.anna.id,
                "folders": "INBOX, INBOX.Sent",
                "look_back_note": refused,
                "error": "\n".join(
                    str(errors.MailUnread(folder=name, uid=7)) for name in ("INBOX", "INBOX.Sent")
                ),
                "skipped_ids": [
                    fields.Command.create({"folder": "INBOX", "reason": "deleted before it could be read"})
                ],
            }
        )
        self.assertFalse(run.look_back_info)
        self.assertEqual(run.look_back_warning, refused.replace("search INBOX for", "search Inbox for"))
        self.assertNotIn("INBOX", run.look_back_warning)
        # Courier's Sent folder keeps the name the recruiter sees in their mail client.
        self.assertEqual(
            [line.split(":")[0] for line in run.error_shown.splitlines()], ["Inbox", "INBOX.Sent"]
        )
        self.assertEqual((run.folders_label, run.skipped_ids.folder_label), ("Inbox, INBOX.Sent", "Inbox"))


@tagged("post_install", "-at_install")
class TestRunsStayWithinTheCronsTime(MailboxCase):
    def test_past_the_deadline_no_batch_starts_and_the_next_run_goes_on(self):
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<later@x>"))
        self.assertEqual(self.env["cats_mail_sync.sync"]._sync(self.anna, deadline=time.monotonic() - 1), 0)
        self.assertFalse(self.messages_with("<later@x>"))
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertEqual(self.sync(self.anna), 1)

    def test_a_run_out_of_time_leaves_the_others_first_for_a_run_that_starts_at_once(self):
        self.anna.action_mailbox_activate()
        self.bert.action_mailbox_activate()
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.run_seconds", "0")
        self.deliver(self.bert, make_mail("carla.candidate@example.com", BERT, message_id="<waits@x>"))
        cron = self.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        with patch.object(type(self.env["cats_mail_sync.sync"]), "_sync") as sync:
            self.run_cron()
        self.assertEqual(sync.call_count, 0, "no mailbox starts after the time budget")
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), triggers + 1)

    def test_mailboxes_synchronized_longest_ago_come_first(self):
        start = fields.Datetime.now()
        with freeze_time(start):
            self.anna.action_mailbox_activate()
            self.bert.action_mailbox_activate()
        with freeze_time(start + timedelta(minutes=10)):
            self.sync(self.anna)
        order = []
        sync_class = type(self.env["cats_mail_sync.sync"])
        with patch.object(sync_class, "_sync", lambda sync, user, deadline=None: order.append(user)):
            self.run_cron()
        self.assertEqual(order, [self.bert, self.anna])
