from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.mail.tools.discuss import Store

from .. import series
from .common import ANNA, BERT, MailboxCase, chatter_recipients, make_mail

PDF = b"%PDF-1.4 cv of Carla"


def raw_mail(sender, to):
    """A mail whose From and To are written as some mail clients write them: names in quotes."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Quoted\r\nMessage-ID: <quoted@x>\r\n"
        "Content-Type: text/plain\r\n\r\nHello\r\n"
    ).encode()


@tagged("post_install", "-at_install")
class TestRemoval(MailboxCase):
    """A logged mail removed from a record goes, with its files, and never comes back there."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager = new_test_user(
            cls.env,
            login="maria",
            groups="base.group_user,hr_recruitment.group_hr_recruitment_manager",
        )
        cls.employee = new_test_user(cls.env, login="eddy", groups="base.group_user")
        cls.anna.action_mailbox_activate()

    def person_type(self):
        """What the lists call the person's own record: Candidate (Odoo 18), Talent (19)."""
        return dict(series.RECORD_TYPES)[series.record_type(self.candidate)]

    def log_cv(self, message_id="<cv@example.com>"):
        mail = make_mail(
            "Carla Candidate <carla.candidate@example.com>",
            ANNA,
            subject="My CV",
            message_id=message_id,
            attachments=[("cv.pdf", PDF, "application", "pdf")],
        )
        self.deliver(self.anna, mail)
        self.assertEqual(self.sync(self.anna), 1)
        message = self.logged(self.candidate, message_id)
        self.assertEqual(len(message), 1)
        return message

    def test_owner_removes_a_mail_with_its_files_and_the_removal_is_recorded_without_content(self):
        message = self.log_cv()
        files = message.attachment_ids
        self.assertTrue(files)

        message.with_user(self.anna).action_mailbox_remove()

        self.assertFalse(message.exists())
        self.assertFalse(files.exists())
        self.assertFalse(self.logged(self.candidate, "<cv@example.com>"))
        # Only from the record it was removed from: the application keeps its copy.
        self.assertEqual(len(self.logged(self.application, "<cv@example.com>")), 1)
        removal = self.env["cats_mail_sync.removal"].search([("message_id", "=", "<cv@example.com>")])
        self.assertEqual(len(removal), 1)
        self.assertEqual(
            (removal.model, removal.res_id, removal.removed_by_id, removal.mailbox_user_id),
            (series.PERSON, self.candidate.id, self.anna, self.anna),
        )
        self.assertTrue(removal.removed_at)
        kept = removal.read()[0]
        self.assertNotIn("My CV", str(kept))
        self.assertNotIn("carla", str(kept).lower())
        # The owner sees the removal; a colleague does not.
        self.assertEqual(removal.with_user(self.anna).search([]), removal)
        self.assertFalse(removal.with_user(self.bert).search([]))

    def test_a_recruitment_manager_removes_mail_of_any_mailbox(self):
        message = self.log_cv()
        message.with_user(self.manager).action_mailbox_remove()
        self.assertFalse(message.exists())
        removal = self.env["cats_mail_sync.removal"].search([("message_id", "=", "<cv@example.com>")])
        self.assertEqual(removal.removed_by_id, self.manager)
        self.assertEqual(removal.with_user(self.manager).search([]), removal)

        # The manager leaves the company: their user can be deleted, the removal keeps their name.
        name, removed_at = self.manager.name, removal.removed_at
        self.manager.unlink()
        self.assertFalse(removal.removed_by_id)
        self.assertEqual((removal.removed_by_name, removal.removed_at), (name, removed_at))
        self.anna.mailbox_folder_ids.sudo().write({"last_uid": 0})  # the mailbox read again
        self.sync(self.anna)
        self.assertFalse(self.logged(self.candidate, "<cv@example.com>"), "still never logged again")

    def test_other_users_cannot_remove_it(self):
        message = self.log_cv()
        for other in (self.bert, self.employee):
            with self.subTest(other.login), self.assertRaises(AccessError):
                message.with_user(other).action_mailbox_remove()
        with self.assertRaises(AccessError):
            self.env["cats_mail_sync.removal"].with_user(self.bert)._remove(message.with_user(self.bert))
        self.assertTrue(message.exists())
        self.assertTrue(message.attachment_ids.exists())
        self.assertFalse(self.env["cats_mail_sync.removal"].search([]))
        # Nor can anybody write the list of removals by hand.
        with self.assertRaises(AccessError):
            self.env["cats_mail_sync.removal"].with_user(self.anna).create(
                {
                    "message_id": "<other@x>",
                    "model": series.PERSON,
                    "res_id": self.candidate.id,
                    "removed_by_id": self.anna.id,
                }
            )

    def test_a_file_another_message_uses_is_kept(self):
        message = self.log_cv()
        cv = message.attachment_ids
        reply = self.candidate.message_post(body="Forwarding the CV", attachment_ids=cv.ids)
        self.assertEqual(reply.attachment_ids, cv)

        message.with_user(self.anna).action_mailbox_remove()

        self.assertFalse(message.exists())
        self.assertTrue(cv.exists())

    def test_never_logged_again_after_a_rescan(self):
        message = self.log_cv()
        message.with_user(self.anna).action_mailbox_remove()
        # The mailbox is read again from its first mail (as after a folder rebuilt on the server).
        self.anna.mailbox_folder_ids.sudo().write({"last_uid": 0})

        self.sync(self.anna)

        self.assertFalse(self.logged(self.candidate, "<cv@example.com>"))
        self.assertEqual(len(self.logged(self.application, "<cv@example.com>")), 1)

    def test_never_logged_again_from_another_mailbox_s_copy(self):
        message = self.log_cv()
        message.with_user(self.anna).action_mailbox_remove()
        self.bert.action_mailbox_activate()
        copy = make_mail(
            "carla.candidate@example.com", [ANNA, BERT], subject="My CV", message_id="<cv@example.com>"
        )
        self.deliver(self.bert, copy)

        self.sync(self.bert)

        self.assertFalse(self.logged(self.candidate, "<cv@example.com>"))
        # Another mail of the same candidate is still logged.
        self.deliver(self.bert, make_mail("carla.candidate@example.com", BERT, message_id="<new@x>"))
        self.sync(self.bert)
        self.assertEqual(len(self.logged(self.candidate, "<new@x>")), 1)

    def test_the_logged_mail_list_shows_a_recruiter_their_mailbox_and_a_manager_every_one(self):
        self.log_cv()
        self.bert.action_mailbox_activate()
        self.deliver(self.bert, make_mail("carla.candidate@example.com", BERT, message_id="<bert@x>"))
        self.sync(self.bert)
        messages = self.env["mail.message"]

        def listed(user):
            action = user.with_user(user).action_mailbox_logged()
            return messages.with_user(user).search(action["domain"]).mapped("message_id")

        self.assertEqual(set(listed(self.anna)), {"<cv@example.com>"})
        self.assertEqual(set(listed(self.bert)), {"<bert@x>"})
        self.manager.write(self.settings_for("maria@recruit.example.test"))
        self.assertEqual(set(listed(self.manager)), {"<cv@example.com>", "<bert@x>"})
        with self.assertRaises(AccessError):
            self.anna.with_user(self.bert).action_mailbox_logged()

        row = messages.with_user(self.anna).search_read(
            [("message_id", "=", "<cv@example.com>"), ("model", "=", series.PERSON)],
            ["date", "email_from", "mailbox_to", "subject", "record_name", "mailbox_attachment_count"],
        )[0]
        self.assertEqual(row["subject"], "My CV")
        self.assertEqual(row["mailbox_to"], ANNA)
        self.assertEqual(row["record_name"], "Carla Candidate")
        self.assertEqual(row["mailbox_attachment_count"], 1)
        action = (
            messages.with_user(self.anna)
            .browse(self.logged(self.candidate, "<cv@example.com>").id)
            .action_mailbox_open_record()
        )
        self.assertEqual((action["res_model"], action["res_id"]), (series.PERSON, self.candidate.id))

    def test_the_chatter_says_whose_mailbox_and_to_whom_in_the_viewer_s_language(self):
        self.env["res.lang"]._activate_lang("nl_NL")
        self.env["ir.module.module"]._load_module_terms(["cats_mail_sync"], ["nl_NL"], overwrite=True)
        message = self.log_cv()
        self.bert.lang = "nl_NL"
        for viewer, expected, to in (
            (self.anna, f"Logged from the mailbox of {self.anna.name}", "To"),
            (self.bert, f"Vastgelegd uit de mailbox van {self.anna.name}", "Aan"),
        ):
            store = Store()
            store.add(message.with_user(viewer).with_context(lang=viewer.lang))
            data = store.get_result()["mail.message"][0]
            self.assertEqual(data["cats_mailbox_line"], expected, viewer.login)
            reader = self.env(context=dict(self.env.context, lang=viewer.lang))
            self.assertEqual(chatter_recipients(data, reader), [(to, ANNA)], viewer.login)
        # Not written in the text, where it would stay in the language of whoever logged it.
        self.assertNotIn(ANNA, message.body)

    def test_the_lists_tell_a_candidate_from_their_application_with_its_job(self):
        self.log_cv()
        rows = (
            self.env["mail.message"]
            .with_user(self.anna)
            .search_read([("message_id", "=", "<cv@example.com>")], ["mailbox_record_type", "mailbox_record"])
        )
        types = dict(
            self.env["mail.message"].fields_get(["mailbox_record_type"])["mailbox_record_type"]["selection"]
        )
        self.assertEqual(
            sorted((types[row["mailbox_record_type"]], row["mailbox_record"]) for row in rows),
            sorted([("Application", "Welder — Carla Candidate"), (self.person_type(), "Carla Candidate")]),
        )
        messages = self.env["mail.message"].with_user(self.anna)
        self.assertEqual(
            messages.browse(self.logged(self.application, "<cv@example.com>").id)._mailbox_record_label(),
            "Application: Welder — Carla Candidate",
        )
        # Grouped by record (the search's "Record"), they stay two groups, as in the run's list.
        groups = messages.read_group(
            [("message_id", "=", "<cv@example.com>")], ["mailbox_record"], ["mailbox_record"]
        )
        self.assertEqual(len(groups), 2)
        search = self.env.ref("cats_mail_sync.mail_message_view_search_logged").arch
        self.assertIn("'group_by': 'mailbox_record'", search)
        # Both lists of logged mail (the profile's, a run's) show the record's type.
        for view in ("mail_message_view_list_logged", "cats_mail_sync_run_view_form"):
            self.assertIn('<field name="mailbox_record_type"', self.env.ref(f"cats_mail_sync.{view}").arch)

    def test_from_and_to_show_names_and_addresses_alike_in_the_list_and_the_chatter(self):
        self.deliver(
            self.anna,
            raw_mail(
                '"Carla Candidate" <carla.candidate@example.com>',
                f'"Anna, Recruiter" <{ANNA}>, "Bo" <bo@x.test>',
            ),
        )
        self.sync(self.anna)
        message = self.logged(self.candidate, "<quoted@x>").with_user(self.anna)
        self.assertEqual(message.email_from, '"Carla Candidate" <carla.candidate@example.com>')  # as written
        self.assertEqual(
            (message.mailbox_sender, message.mailbox_to_shown),
            ("Carla Candidate <carla.candidate@example.com>", f'"Anna, Recruiter" <{ANNA}>, Bo <bo@x.test>'),
        )
        store = Store()
        store.add(message)
        data = store.get_result()["mail.message"][0]
        self.assertEqual(data["email_from"], "Carla Candidate <carla.candidate@example.com>")
        self.assertEqual(chatter_recipients(data, self.env)[0][1], message.mailbox_to_shown)

    def test_remove_says_what_went_from_which_record_and_reads_the_list_again(self):
        message = self.log_cv()
        action = message.with_user(self.anna).action_mailbox_remove()
        self.assertEqual(action["tag"], "display_notification")
        self.assertEqual(
            (action["params"]["message"], action["params"]["type"]),
            (
                f"1 mail removed from {self.person_type()}: Carla Candidate; "
                "it will not be logged there again.",
                "success",
            ),
        )
        # Then the list is read again (no group left showing "(0)").
        self.assertEqual(action["params"]["next"], {"type": "ir.actions.act_window_close"})
        # Removed already (another tab, a double click): said, nothing else.
        again = message.with_user(self.anna).action_mailbox_remove()
        self.assertEqual(
            (again["params"]["message"], again["params"]["type"]),
            ("This mail was removed already.", "warning"),
        )

        self.log_cv("<second@example.com>")
        both = self.messages_with("<second@example.com>")  # on the candidate and on the application
        action = both.with_user(self.anna).action_mailbox_remove()
        self.assertEqual(
            action["params"]["message"],
            "2 mails removed from 2 records; they will not be logged there again.",
        )


@tagged("post_install", "-at_install")
class TestRemovalTour(HttpCase):
    """In the browser, as a recruiter without admin rights: her logged mail, and one removed."""

    def setUp(self):
        super().setUp()
        self.tess = new_test_user(
            self.env,
            login="tess",
            tz="Europe/Amsterdam",  # the Preferences form requires one before any button
            password="tess-odoo-password",
            email="tess@recruit.example.test",
            groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
        )
        self.tess.write(
            {
                "mailbox_email": "tess@recruit.example.test",
                "mailbox_login": "tess@recruit.example.test",
                "mailbox_password": "x",
                "mailbox_imap_host": "imap.recruit.example.test",
            }
        )
        now = fields.Datetime.now()
        self.tess.sudo()._mailbox_set_state("active", mailbox_activated_at=now, mailbox_last_sync_at=now)

    def test_recruiter_sees_her_logged_mail_and_removes_one(self):
        tess = self.tess
        candidate = series.new_person(self.env, {"partner_name": "Carla", "email_from": "carla@example.com"})
        logger = self.env["cats_mail_sync.logger"]
        for subject, message_id in (
            ("Private matter", "<private@x>"),
            ("Interview on Tuesday", "<tuesday@x>"),
        ):
            mail = make_mail("carla@example.com", "tess@recruit.example.test", subject, message_id=message_id)
            logger._log(tess, [(mail.as_bytes(), {candidate: set()}, candidate.partner_id)])
        self.assertEqual(len(candidate.message_ids.filtered("mailbox_user_id")), 2)

        self.start_tour("/odoo", "cats_mail_sync_logged_mail_tour", login="tess", timeout=120)

        self.assertEqual(
            candidate.message_ids.filtered("mailbox_user_id").mapped("subject"), ["Interview on Tuesday"]
        )
        removal = self.env["cats_mail_sync.removal"].search([("message_id", "=", "<private@x>")])
        self.assertEqual((removal.removed_by_id, removal.res_id), (tess, candidate.id))

    def test_the_list_tells_candidate_from_application_and_says_what_was_removed(self):
        candidate = series.new_person(
            self.env, {"partner_name": "Carla Jansen", "email_from": "carla@example.com"}
        )
        application = series.new_application(
            candidate, {"job_id": self.env["hr.job"].create({"name": "Welder"}).id}
        )
        mail = raw_mail('"Carla Jansen" <carla@example.com>', "tess@recruit.example.test")
        self.env["cats_mail_sync.logger"]._log(
            self.tess, [(mail, {candidate: set(), application: set()}, self.env["res.partner"])]
        )

        self.start_tour("/odoo", "cats_mail_sync_logged_mail_feedback_tour", login="tess", timeout=120)

        self.assertFalse(application.message_ids.filtered("mailbox_user_id"))
        self.assertEqual(len(candidate.message_ids.filtered("mailbox_user_id")), 1)
