"""A mail whose header a server's answer does not hold is never passed over as "no match": the
folder is read up to it, the run says so, the next runs read it again; only after as many runs
as a failure is retried at every run is it passed over, named in the sync log, and only where the
server reads other mail. Against a real IMAP server over TLS (harness.proxy's FakeImapServer,
whose answers to the header FETCH each test chooses)."""

from odoo.tests import TransactionCase, new_test_user, tagged

from .. import series
from ..models.cats_mail_sync_sync import UNREAD_TRIES
from .common import ANNA, allow_local_servers, make_mail
from .harness.proxy import FakeImapServer

CANDIDATE = "carla.unread@example.com"


@tagged("post_install", "-at_install")
class TestUnreadMail(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.unread = set()  # UIDs the server answers without their header (NIL)
        cls.server = FakeImapServer(users={ANNA: "anna-Secret-42"}, sections=cls.section).start()
        cls.addClassCleanup(cls.server.stop)
        allow_local_servers(cls.env, cls.server.ca_file)
        cls.anna = new_test_user(
            cls.env,
            login="anna.unread",
            email=ANNA,
            groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
        )
        cls.anna.write(
            {
                "mailbox_email": ANNA,
                "mailbox_login": ANNA,
                "mailbox_password": "anna-Secret-42",
                "mailbox_imap_host": cls.server.host,
                "mailbox_imap_port": cls.server.port,
                "mailbox_imap_security": "ssl",
            }
        )
        cls.candidate = series.new_person(cls.env, {"partner_name": "Carla", "email_from": CANDIDATE})

    @classmethod
    def section(cls, folder, uid, label, content):
        if folder == "INBOX" and uid in cls.unread and label.startswith(b"BODY[HEADER.FIELDS"):
            return label + b" NIL"
        return label + b" {%d}\r\n%s" % (len(content), content)

    def setUp(self):
        super().setUp()
        self.server.folders.update(INBOX=[], Sent=[])
        self.unread.clear()
        self.anna.action_mailbox_activate()
        self.inbox = self.anna.mailbox_folder_ids.filtered(lambda folder: folder.role == "inbox")

    def deliver(self, number, unread=False):
        """A mail from the candidate in the Inbox; its UID."""
        mail = make_mail(CANDIDATE, ANNA, message_id=f"<unread-{number}@x>")
        self.server.folders["INBOX"].append(mail.as_bytes())
        uid = len(self.server.folders["INBOX"])
        if unread:
            self.unread.add(uid)
        return uid

    def sync(self):
        tally = self.env["cats_mail_sync.sync"]._sync_run(self.anna)
        self.anna.invalidate_recordset()
        return tally

    def logged(self):
        messages = self.env["mail.message"].search(
            [
                ("model", "=", series.PERSON),
                ("res_id", "=", self.candidate.id),
                ("mailbox_user_id", "!=", False),
            ]
        )
        return sorted(messages.mapped("message_id"))

    def last_run(self):
        return self.env["cats_mail_sync.run"].search([("user_id", "=", self.anna.id)], limit=1)

    def test_the_cursor_stays_before_a_mail_not_read_and_the_run_says_so(self):
        first = self.deliver(1)
        odd = self.deliver(2, unread=True)
        self.deliver(3)

        self.sync()

        self.assertEqual(self.logged(), ["<unread-1@x>"], "the mail before it is logged, none after it")
        self.assertEqual(self.inbox.last_uid, first, "the cursor stays before the mail not read")
        self.assertEqual(self.inbox.unread_tries, {str(odd): 1})
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertIn(f"answer for mail {odd} held no header", self.anna.mailbox_error)
        self.assertIn(f"answer for mail {odd} held no header", self.last_run().error)
        self.assertFalse(self.last_run().skipped_ids)

        # The server reads it at a later run: it is logged, and the mail after it.
        self.unread.clear()
        self.sync()
        self.assertEqual(self.logged(), ["<unread-1@x>", "<unread-2@x>", "<unread-3@x>"])
        self.assertEqual(self.inbox.last_uid, 3)
        self.assertFalse(self.inbox.unread_tries)
        self.assertFalse(self.anna.mailbox_error)

    def test_a_mail_never_read_is_passed_over_after_the_retries_and_named(self):
        self.deliver(1)
        odd = self.deliver(2, unread=True)
        self.deliver(3)

        for tries in range(1, UNREAD_TRIES):
            self.sync()
            self.assertEqual(self.inbox.last_uid, odd - 1, f"after {tries} runs")
            self.assertEqual(self.logged(), ["<unread-1@x>"])
        self.sync()

        self.assertEqual(
            self.logged(), ["<unread-1@x>", "<unread-3@x>"], "one odd mail does not block the rest"
        )
        self.assertEqual(self.inbox.last_uid, 3)
        self.assertFalse(self.inbox.unread_tries)
        skipped = self.last_run().skipped_ids
        self.assertEqual(skipped.mapped("folder"), ["INBOX"])
        self.assertIn(f"no header for mail {odd} in {UNREAD_TRIES} runs", skipped.reason)
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertFalse(self.anna.mailbox_error)

    def test_a_server_that_answers_every_mail_without_its_header_stops_the_mailbox(self):
        uids = [self.deliver(number, unread=True) for number in range(1, 4)]

        for _tries in range(UNREAD_TRIES):
            self.sync()

        self.assertEqual(self.logged(), [])
        self.assertEqual(self.inbox.last_uid, uids[0] - 1, "nothing passed over")
        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertIn("answers every mail without its header", self.anna.mailbox_error)
        self.assertFalse(self.env["cats_mail_sync.skipped"].search([("user_id", "=", self.anna.id)]))

    def test_the_look_back_stays_before_a_mail_not_read(self):
        self.candidate.email_from = "someone.else@example.com"
        self.deliver(1)
        odd = self.deliver(2, unread=True)
        self.deliver(3)
        self.unread.clear()
        self.sync()  # read, matched nothing: the candidate had another address
        self.assertEqual((self.inbox.last_uid, self.logged()), (3, []))

        self.unread.add(odd)
        self.candidate.email_from = CANDIDATE  # the look-back searches the folder for it
        self.env.flush_all()
        self.sync()

        self.assertEqual(self.logged(), ["<unread-1@x>"])
        self.assertEqual(self.inbox.look_back_uid, odd - 1)
        self.assertIn(f"answer for mail {odd} held no header", self.anna.mailbox_error)
        self.unread.clear()
        self.sync()
        self.assertEqual(self.logged(), ["<unread-1@x>", "<unread-2@x>", "<unread-3@x>"])
