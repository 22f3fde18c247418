"""Looking back: mail with people who become candidates or contacts after it arrived."""

import base64
import contextlib
import datetime
import imaplib
import math
from unittest.mock import patch

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from odoo import sql_db
from odoo.tests import new_test_user, tagged

from .. import series
from ..mailbox_client.reader import ADDRESSES_PER_SEARCH, MailboxReader
from .common import ANNA, BERT, MailboxCase, make_mail
from .harness.corpus import hostile_corpus

STRANGER = "sam.stranger@applicants.example.org"
CV = b"%PDF-1.4 the CV of Sam Stranger \x00\x01\x02\xff"


@tagged("post_install", "-at_install")
class TestLookBack(MailboxCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.anna.action_mailbox_activate()
        cls.cron = cls.env.ref("cats_mail_sync.ir_cron_cats_mail_sync")

    def sync(self, user):
        # What the transaction that made the records wrote is there for the run (a commit, in use).
        self.env.flush_all()
        return super().sync(user)

    def searches(self):
        """A context that counts the SEARCH commands sent for addresses (``counted["n"]``)."""
        counted = {"n": 0, "most": 0}
        real = IMAPClient.search

        def counting(client, criteria="ALL", charset=None):
            if any(key in ("FROM", "TO", "CC", "BCC") for key in criteria):
                counted["n"] += 1
                counted["most"] = max(counted["most"], criteria.count("FROM"))
            return real(client, criteria, charset)

        return counted, patch.object(IMAPClient, "search", counting)

    def last_run(self, user=None):
        return self.env["cats_mail_sync.run"].search([("user_id", "=", (user or self.anna).id)], limit=1)

    def test_the_stranger_who_becomes_a_candidate(self):
        application = make_mail(
            f"Sam Stranger <{STRANGER}>",
            ANNA,
            subject="Application: welder",
            body="Please find my CV attached",
            message_id="<application@applicants>",
            attachments=[("cv.pdf", CV, "application", "pdf")],
        )
        self.deliver(self.anna, application)
        self.deliver(
            self.anna,
            make_mail(ANNA, STRANGER, subject="Re: Application", message_id="<answer@recruit>"),
            "Sent",
        )
        self.assertEqual(self.sync(self.anna), 0)  # nobody knows Sam yet
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", self.cron.id)])

        sam = series.new_person(self.env, {"partner_name": "Sam Stranger", "email_from": STRANGER})

        # A run is asked for at once, not at the next tick.
        self.assertGreater(
            self.env["ir.cron.trigger"].search_count([("cron_id", "=", self.cron.id)]), triggers
        )
        self.assertEqual(self.sync(self.anna), 2)
        self.assertEqual(len(self.logged(sam, "<application@applicants>")), 1)
        self.assertEqual(len(self.logged(sam, "<answer@recruit>")), 1)
        message = self.logged(sam, "<application@applicants>")
        self.assertEqual(message.attachment_ids.mapped("name"), ["cv.pdf"])
        self.assertEqual(base64.b64decode(message.attachment_ids.datas), CV)
        self.assertEqual(message.author_id, sam.partner_id)
        self.assertEqual(self.logged(sam, "<answer@recruit>").author_id, self.anna.partner_id)
        run = self.last_run()
        self.assertEqual((run.looked_back_for, run.found_back, run.logged_back, run.logged), (1, 2, 2, 2))
        # Looked back once: the next run finds nothing more to do, and logs nothing twice.
        self.assertEqual(self.sync(self.anna), 0)
        self.assertEqual(self.last_run(), run, "an idle check, nothing looked back for: no row of its own")
        self.assertEqual(self.anna.mailbox_checks_since_logged, 1)
        self.assertEqual(len(self.messages_with("<application@applicants>")), 1)

    def test_new_contact_and_several_addresses_in_one_field(self):
        self.deliver(self.anna, make_mail("desk@agency.example.net", ANNA, message_id="<desk@x>"))
        self.deliver(self.anna, make_mail("Jobs@Agency.example.net", ANNA, message_id="<jobs@x>"))
        self.deliver(self.anna, make_mail("other@agency.example.net", ANNA, message_id="<other@x>"))
        self.sync(self.anna)

        agency = self.env["res.partner"].create(
            {"name": "Agency", "email": "Desk <desk@agency.example.net>; jobs@agency.example.net"}
        )
        self.sync(self.anna)

        self.assertEqual(len(self.logged(agency, "<desk@x>")), 1)
        self.assertEqual(len(self.logged(agency, "<jobs@x>")), 1)
        self.assertFalse(self.messages_with("<other@x>"))

    def test_changed_address_and_restored_contact(self):
        self.deliver(self.anna, make_mail("carla@new-home.example.com", ANNA, message_id="<carla-new@x>"))
        self.deliver(self.anna, make_mail("old@client.example.com", ANNA, message_id="<old-client@x>"))
        self.sync(self.anna)
        self.assertFalse(self.messages_with("<carla-new@x>"))
        archived = self.env["res.partner"].create(
            {"name": "Old client", "email": "old@client.example.com", "active": False}
        )
        self.sync(self.anna)
        self.assertFalse(self.messages_with("<old-client@x>"))

        self.candidate.email_from = "carla@new-home.example.com"
        archived.active = True
        self.sync(self.anna)

        self.assertEqual(len(self.logged(self.candidate, "<carla-new@x>")), 1)
        # An application has the address of its candidate (Odoo 18), or its own (19): it gets the
        # mail of the new one where it has it.
        moved = self.application.email_normalized == "carla@new-home.example.com"
        self.assertEqual(len(self.logged(self.application, "<carla-new@x>")), int(moved))
        self.assertEqual(len(self.logged(archived, "<old-client@x>")), 1)

    def test_substring_trap_and_mail_from_before_activation(self):
        before = make_mail("ann@trap.example.nl", ANNA, message_id="<before-activation@x>")
        self.deliver(self.bert, before)
        self.bert.action_mailbox_activate()
        self.deliver(self.bert, make_mail("joann@trap.example.nl", BERT, message_id="<joann@x>"))
        self.deliver(self.bert, make_mail("ann@trap.example.nl.evil.test", BERT, message_id="<longer@x>"))
        self.deliver(self.bert, make_mail("ann@trap.example.nl", BERT, message_id="<ann@x>"))
        self.sync(self.bert)

        ann = series.new_person(self.env, {"partner_name": "Ann", "email_from": "ann@trap.example.nl"})
        self.sync(self.bert)

        self.assertEqual(len(self.logged(ann, "<ann@x>")), 1)
        self.assertEqual(self.last_run(self.bert).found_back, 1)
        self.assertFalse(self.messages_with("<joann@x>"))
        self.assertFalse(self.messages_with("<longer@x>"))
        self.assertFalse(self.messages_with("<before-activation@x>"))

    def test_look_back_and_scan_meet_the_same_mail(self):
        self.deliver(self.anna, make_mail(STRANGER, ANNA, message_id="<both@x>"))
        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        # The scan logs it (Sam is known now), then the look-back finds it again.
        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(self.last_run().found_back, 1)
        self.assertEqual(self.last_run().logged_back, 0)
        self.assertEqual(len(self.logged(sam, "<both@x>")), 1)
        self.assertEqual(len(self.messages_with("<both@x>")), 1)

    def test_internal_only_and_excluded_mail_is_not_logged(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("cats_mail_sync.internal_domains", "sister.example.com")
        self.anna.mailbox_excluded = "doctor@clinic.example.com"
        self.deliver(
            self.anna, make_mail(ANNA, "colleague@sister.example.com", message_id="<internal@x>"), "Sent"
        )
        self.deliver(
            self.anna,
            make_mail(STRANGER, [ANNA, "doctor@clinic.example.com"], message_id="<excluded@x>"),
        )
        self.deliver(self.anna, make_mail(STRANGER, ANNA, message_id="<fine@x>"))
        self.sync(self.anna)

        sister = self.env["res.partner"].create({"name": "Sister", "email": "colleague@sister.example.com"})
        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        self.sync(self.anna)

        self.assertFalse(self.logged(sister))
        self.assertFalse(self.messages_with("<internal@x>"))
        self.assertFalse(self.messages_with("<excluded@x>"))
        self.assertEqual(len(self.logged(sam, "<fine@x>")), 1)

    def test_bcc_of_sent_mail_only_on_its_own_record(self):
        self.deliver(
            self.anna,
            make_mail(ANNA, "chris@client.example.com", bcc=[STRANGER], message_id="<bcc@x>"),
            "Sent",
        )
        self.deliver(
            self.anna, make_mail("someone@else.example.org", ANNA, bcc=[STRANGER], message_id="<in-bcc@x>")
        )
        self.sync(self.anna)
        self.assertEqual(len(self.messages_with("<bcc@x>")), 1)  # on Chris, without the Bcc

        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        self.sync(self.anna)

        message = self.logged(sam, "<bcc@x>")
        self.assertEqual(len(message), 1)
        self.assertEqual(message.mailbox_bcc, STRANGER)
        self.assertFalse(self.logged(self.client_contact, "<bcc@x>").mailbox_bcc)
        self.assertFalse(self.logged(sam, "<in-bcc@x>"))  # Bcc of received mail matches nothing

    def test_hostile_mail_met_by_a_look_back_is_logged_as_the_scan_logs_it(self):
        known, late = "known@applicants.example.org", "late@applicants.example.org"
        first = series.new_person(self.env, {"partner_name": "Known", "email_from": known})
        # The same corpus (its random parts too) for both: only the sender differs.
        for sender in (known, late):
            for _name, raw, _expectation in hostile_corpus(sender, ANNA, token="lookback0001"):
                # Refused by some servers (Cyrus keeps no mail with a NUL byte): in no mailbox.
                with contextlib.suppress(imaplib.IMAP4.error):
                    self.deliver(self.anna, raw)
        # The scan alone (the look-back for the first candidate waits).
        looking_back = type(self.env["cats_mail_sync.look_back_sync"])
        with patch.object(looking_back, "_past_deadline", lambda model, tally: True):
            self.sync(self.anna)
        scanned = len(self.logged(first))
        self.assertGreater(scanned, 80)  # of some 100 (Cyrus refuses to store a few of them)

        second = series.new_person(self.env, {"partner_name": "Late", "email_from": late})
        self.sync(self.anna)
        self.sync(self.anna)

        self.assertEqual(len(self.logged(second)), scanned)
        self.assertEqual(
            len(self.logged(second).filtered(lambda m: "original.eml" in m.attachment_ids.mapped("name"))),
            len(self.logged(first).filtered(lambda m: "original.eml" in m.attachment_ids.mapped("name"))),
        )
        self.assertFalse(self.last_run().error)

    def test_uidvalidity_change_in_between(self):
        self.deliver(self.anna, make_mail(ANNA, STRANGER, message_id="<kept@x>"), "Sent")
        self.sync(self.anna)
        inbox = self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "sent")
        old = inbox.uidvalidity
        with self.imap.client(ANNA) as client:
            client.delete_folder(self.imap.sent_folder)
            client.create_folder(self.imap.sent_folder)
        long_ago = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        self.deliver(self.anna, make_mail(ANNA, STRANGER, message_id="<ancient@x>"), "Sent", date=long_ago)
        self.deliver(self.anna, make_mail(ANNA, STRANGER, message_id="<kept@x>"), "Sent")
        self.sync(self.anna)
        self.assertNotEqual(inbox.uidvalidity, old)

        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        self.sync(self.anna)

        self.assertEqual(len(self.logged(sam, "<kept@x>")), 1)
        self.assertFalse(self.messages_with("<ancient@x>"))

    def test_many_addresses_bounded_searches_and_new_mail_in_the_same_run(self):
        self.deliver(self.anna, make_mail("number-1234@pool.example.net", ANNA, message_id="<pool@x>"))
        self.deliver(
            self.anna, make_mail(ANNA, "number-9999@pool.example.net", message_id="<pool-sent@x>"), "Sent"
        )
        self.sync(self.anna)
        count = 10_000
        self.env["res.partner"].create(
            [{"name": f"Pool {n}", "email": f"number-{n}@pool.example.net"} for n in range(count)]
        )
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<new-mail@x>"))
        counted, counting = self.searches()
        # Time enough for the whole look-back in this run (a tenth of the run's budget is the look-back's).
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.run_seconds", "10000")

        with counting:
            self.sync(self.anna)

        # Every address in both folders, ADDRESSES_PER_SEARCH to a command.
        self.assertEqual(counted["n"], 2 * math.ceil(count / ADDRESSES_PER_SEARCH))
        self.assertEqual(counted["most"], ADDRESSES_PER_SEARCH)
        self.assertEqual(len(self.logged(self.candidate, "<new-mail@x>")), 1)
        pool = self.env["res.partner"].search([("email", "=", "number-1234@pool.example.net")])
        self.assertEqual(len(self.logged(pool, "<pool@x>")), 1)
        self.assertEqual(len(self.messages_with("<pool-sent@x>")), 1)
        self.assertEqual(self.last_run().looked_back_for, count)
        # Both folders have passed every address: the list is emptied.
        self.env["cats_mail_sync.look_back"]._gc()
        self.assertFalse(self.env["cats_mail_sync.look_back"].search_count([]))

    def test_time_budget_spent_look_back_resumes_and_new_mail_comes_first(self):
        self.deliver(self.anna, make_mail(STRANGER, ANNA, message_id="<later@x>"))
        self.sync(self.anna)
        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<new@x>"))
        looking_back = type(self.env["cats_mail_sync.look_back_sync"])
        triggers = self.env["ir.cron.trigger"].search([("cron_id", "=", self.cron.id)])
        with patch.object(looking_back, "_past_deadline", lambda model, tally: True):
            self.sync(self.anna)
        self.assertEqual(len(self.logged(self.candidate, "<new@x>")), 1)
        self.assertFalse(self.logged(sam))
        # A run soon goes on with it, whoever started this one ("Sync now", a queue_job job).
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", self.cron.id)]) - triggers)
        self.assertIn(self.anna.id, self.env["cats_mail_sync.look_back"]._users_waiting())

        self.sync(self.anna)

        self.assertEqual(len(self.logged(sam, "<later@x>")), 1)
        self.assertNotIn(self.anna.id, self.env["cats_mail_sync.look_back"]._users_waiting())

    def test_a_step_cut_short_goes_on_with_its_own_addresses(self):
        self.deliver(self.anna, make_mail("first@applicants.example.org", ANNA, message_id="<first@x>"))
        uid = self.deliver(self.anna, make_mail(STRANGER, ANNA, message_id="<sam@x>"))
        self.sync(self.anna)
        first = series.new_person(
            self.env, {"partner_name": "First", "email_from": "first@applicants.example.org"}
        )
        inbox = self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "inbox")
        [(row_id, _date, _address)] = [
            row
            for row in self.env["cats_mail_sync.look_back"]._pending(inbox, 10)
            if row[2].startswith("first@")
        ][-1:]
        # A run looked back for First up to the last UID and was stopped before the step ended.
        inbox.write(
            {"look_back_step_id": row_id, "look_back_uid": uid, "look_back_uidvalidity": inbox.uidvalidity}
        )
        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})

        self.sync(self.anna)

        # Sam's mail lies below where First's step had got to: it is found all the same.
        self.assertEqual(len(self.logged(sam, "<sam@x>")), 1)
        self.assertFalse(self.logged(first))  # the step went on above its UID: nothing more there
        self.assertFalse(self.env["cats_mail_sync.look_back"]._pending(inbox, 10))

    def test_a_server_refusing_search_never_blocks_the_new_mail(self):
        self.deliver(self.anna, make_mail(STRANGER, ANNA, message_id="<refused@x>"))
        self.sync(self.anna)
        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<new@x>"))

        def refuse(reader, criteria, charset, searched):
            raise IMAPClientError("SEARCH command error: NO [LIMIT] Search too complex")

        with patch.object(MailboxReader, "_search", refuse):
            self.sync(self.anna)

        self.assertEqual(len(self.logged(self.candidate, "<new@x>")), 1)
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertFalse(self.anna.mailbox_error)
        run = self.last_run()
        self.assertFalse(run.error)
        self.assertIn("Search too complex", run.look_back_note)
        self.assertFalse(self.logged(sam))
        # Not asked again at once (it would be refused again), but at the next scheduled run.
        self.assertNotIn(self.anna.id, self.env["cats_mail_sync.look_back"]._users_waiting())

        self.sync(self.anna)

        self.assertEqual(len(self.logged(sam, "<refused@x>")), 1)
        self.assertFalse(self.last_run().look_back_note)

    def test_a_triggered_run_takes_a_mailbox_with_a_look_back_to_do(self):
        self.deliver(self.anna, make_mail(STRANGER, ANNA, message_id="<soon@x>"))
        self.env["cats_mail_sync.sync"]._cron()  # the scheduled run: Anna is synchronized
        # The cycle began before Anna's run: a run the trigger starts now would not take her again.
        self.cron.nextcall = self.anna.mailbox_last_sync_at + datetime.timedelta(minutes=10, seconds=-1)
        self.assertFalse(self.env["cats_mail_sync.sync"]._due_mailboxes())

        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})

        self.assertEqual(self.env["cats_mail_sync.sync"]._due_mailboxes(), self.anna)
        self.env["cats_mail_sync.sync"]._cron()  # the run the trigger starts
        self.assertEqual(len(self.logged(sam, "<soon@x>")), 1)
        self.assertFalse(self.env["cats_mail_sync.sync"]._due_mailboxes())

    def test_an_address_of_a_transaction_still_open_is_not_skipped(self):
        inbox = self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "inbox")
        look_back = self.env["cats_mail_sync.look_back"]
        with sql_db.db_connect(self.env.cr.dbname).cursor() as import_under_way:
            import_under_way.execute("SELECT txid_current()")  # it will queue addresses as of now
            # Another transaction, started later, queued an address and ended.
            later = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(
                minutes=1
            )
            row = look_back.create({"address": STRANGER})
            self.env.cr.execute(
                "UPDATE cats_mail_sync_look_back SET create_date = %s WHERE id = %s", [later, row.id]
            )
            # Passing it now would skip the rows of the open transaction, older, when they come.
            self.assertFalse(look_back._pending(inbox, 10))
            self.assertNotIn(self.anna.id, look_back._users_waiting())
        self.assertEqual([row[2] for row in look_back._pending(inbox, 10)], [STRANGER])
        self.assertIn(self.anna.id, look_back._users_waiting())

    def test_a_new_colleague_is_not_looked_back_for_a_new_portal_user_is(self):
        """Every active mailbox would search for the address of a colleague, whose mail is never
        logged; a portal user (a client contact, a candidate) is a contact like any other."""
        look_back = self.env["cats_mail_sync.look_back"]
        colleague = new_test_user(self.env, "colleague", email="colleague@example.com")
        client = new_test_user(self.env, "client", groups="base.group_portal", email="client@example.org")
        queued = set(look_back.search([]).mapped("address"))
        self.assertNotIn(colleague.email_normalized, queued)
        self.assertIn(client.email_normalized, queued)
        # A contact looked back for when made is not looked back for again when given portal access.
        desk = "desk@agency.example.org"
        contact = self.env["res.partner"].create({"name": "Desk", "email": desk})
        self.assertTrue(look_back.search([("address", "=", desk)]))
        look_back.search([("address", "=", desk)]).unlink()
        new_test_user(self.env, "desk", groups="base.group_portal", partner_id=contact.id, email=desk)
        self.assertFalse(look_back.search([("address", "=", desk)]))
        # Once made, a colleague's contact is like any other: an address added is looked back for.
        colleague.partner_id.email = "colleague@example.com, private@example.org"
        self.assertIn("private@example.org", set(look_back.search([]).mapped("address")))
        self.assertFalse(colleague.env.context.get("cats_mail_sync_new_user"))

    def test_nothing_is_queued_without_an_active_mailbox(self):
        self.anna.action_mailbox_deactivate()
        series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        self.assertFalse(self.env["cats_mail_sync.look_back"].search_count([("address", "=", STRANGER)]))


@tagged("post_install", "-at_install")
class TestHistory(MailboxCase):
    """Earlier mail, asked for at activation."""

    def deliver_days_ago(self, days, message_id, sender="carla.candidate@example.com"):
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
        self.deliver(self.bert, make_mail(sender, BERT, message_id=message_id, date=when), date=when)

    def test_the_last_30_days_day_29_logged_day_31_not(self):
        self.deliver_days_ago(31, "<day-31@x>")
        self.deliver_days_ago(29, "<day-29@x>")
        self.deliver_days_ago(29, "<day-29-stranger@x>", sender=STRANGER)
        self.deliver_days_ago(1, "<day-1@x>")
        self.bert.mailbox_history = "30"
        self.bert.action_mailbox_activate()
        self.assertEqual(self.bert.mailbox_history_state[:16], "Being logged bac")

        self.sync(self.bert)

        self.assertEqual(len(self.logged(self.candidate, "<day-29@x>")), 1)
        self.assertEqual(len(self.logged(self.candidate, "<day-1@x>")), 1)
        self.assertFalse(self.messages_with("<day-31@x>"))
        self.assertFalse(self.messages_with("<day-29-stranger@x>"))
        self.assertTrue(self.bert.mailbox_history_state.startswith("Logged back to"))
        run = self.env["cats_mail_sync.run"].search([("user_id", "=", self.bert.id)], limit=1)
        self.assertIn("INBOX: earlier mail back to", run.look_back_done)
        self.assertEqual(run.logged, 2)
        # Done once: the next run looks at nothing before activation, and a new candidate's
        # mail of the history is found by the look-back.
        self.env.flush_all()
        sam = series.new_person(self.env, {"partner_name": "Sam", "email_from": STRANGER})
        self.env.flush_all()
        self.sync(self.bert)
        self.assertEqual(len(self.logged(sam, "<day-29-stranger@x>")), 1)
        self.assertFalse(self.messages_with("<day-31@x>"))

    def test_by_default_no_earlier_mail_and_a_cut_history_resumes(self):
        self.deliver_days_ago(2, "<earlier@x>")
        self.anna.action_mailbox_activate()
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id="<earlier-anna@x>"))
        self.assertEqual(self.anna.mailbox_history, "none")
        self.assertFalse(self.anna.mailbox_history_state)

        self.bert.mailbox_history = "90"
        self.bert.action_mailbox_activate()
        looking_back = type(self.env["cats_mail_sync.look_back_sync"])
        with patch.object(looking_back, "_past_deadline", lambda model, tally: True):
            self.sync(self.bert)
        self.assertFalse(self.messages_with("<earlier@x>"))
        self.assertIn(self.bert.id, self.env["cats_mail_sync.look_back"]._users_waiting())

        self.sync(self.bert)

        self.assertEqual(len(self.logged(self.candidate, "<earlier@x>")), 1)
        self.assertNotIn(self.bert.id, self.env["cats_mail_sync.look_back"]._users_waiting())
