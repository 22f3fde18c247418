from unittest.mock import patch

from imapclient import IMAPClient

from odoo.tests import tagged

from ..mailbox_client import reader
from .common import ANNA, CommittedMailboxCase, MailboxCase, as_in_production, make_mail
from .harness.proxy import FaultProxy

CARLA = "carla.candidate@example.com"
VIDEO = bytes(range(256)) * 1200  # 300 KB
PDF = b"%PDF-1.4 " + b"p" * 3000
PORTFOLIO = b"portfolio " * 6000  # 60 KB: about 82 KB once encoded in a mail
# Two of those mails in a group, not three.
GROUP_BYTES = 200 * 1024


@tagged("post_install", "-at_install")
class TestLargeMail(MailboxCase):
    def setUp(self):
        super().setUp()
        self.anna.action_mailbox_activate()
        self.inbox = self.anna.mailbox_folder_ids.filtered(lambda f: f.role == "inbox")

    def deliver_portfolios(self, count, first=0):
        """``count`` mails of about 82 KB from the candidate: their Message-IDs and UIDs."""
        ids = [f"<portfolio-{n}@x>" for n in range(first, first + count)]
        uids = []
        for message_id in ids:
            mail = make_mail(
                CARLA,
                ANNA,
                message_id=message_id,
                attachments=[("portfolio.txt", PORTFOLIO, "application", "octet-stream")],
            )
            uids.append(self.deliver(self.anna, mail))
        return ids, uids

    def cursor(self):
        self.env.cr.execute("SELECT last_uid FROM cats_mail_sync_folder WHERE id = %s", [self.inbox.id])
        return self.env.cr.fetchone()[0]

    def last_run(self):
        return self.env["cats_mail_sync.run"].search([("user_id", "=", self.anna.id)], limit=1)

    def test_a_mail_above_the_limit_is_logged_with_its_text_and_a_note_naming_what_is_left_out(self):
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.max_mail_mb", "0.2")
        large = make_mail(
            f"Carla Candidate <{CARLA}>",
            ANNA,
            subject="Portfolio",
            body="My portfolio, as promised",
            message_id="<large@x>",
            attachments=[
                ("portfolio.mp4", VIDEO, "video", "mp4"),
                ("cv.pdf", PDF, "application", "pdf"),
            ],
        )
        small = make_mail(
            CARLA, ANNA, message_id="<small@x>", attachments=[("cv.pdf", PDF, "application", "pdf")]
        )
        self.deliver(self.anna, large)
        self.deliver(self.anna, small)

        self.assertEqual(self.sync(self.anna), 2)

        for record in (self.candidate, self.application):
            message = self.logged(record, "<large@x>")
            self.assertEqual(len(message), 1, record)
            self.assertEqual(message.subject, "Portfolio")
            self.assertEqual(message.author_id, self.candidate.partner_id)
            self.assertIn("My portfolio, as promised", message.body)
            self.assertIn("larger than the 0.2 MB limit", message.body)
            self.assertIn("portfolio.mp4 (0.3 MB), cv.pdf (3 KB)", message.body)
            self.assertFalse(message.attachment_ids)
            # Below the limit, mail is logged whole as ever: its attachment stored, no note.
            below = self.logged(record, "<small@x>")
            self.assertEqual(below.attachment_ids.mapped("name"), ["cv.pdf"])
            self.assertEqual(below.attachment_ids.raw, PDF)
            self.assertNotIn("limit", below.body)
        run = self.last_run()
        self.assertEqual((run.matched, run.logged, run.shortened, run.skipped), (2, 2, 1, 0))
        self.assertEqual(self.sync(self.anna), 0, "nothing logged twice")
        self.assertEqual(len(self.messages_with("<large@x>")), 2)

    def test_whole_mails_are_fetched_in_groups_capped_by_size_each_committed_before_the_next(self):
        start = self.cursor()
        ids, uids = self.deliver_portfolios(2)
        stranger = self.deliver(self.anna, make_mail("stranger@example.net", ANNA, message_id="<stranger@x>"))
        more_ids, more_uids = self.deliver_portfolios(3, first=2)
        ids, uids = ids + more_ids, uids + more_uids
        fetches, fetch = [], IMAPClient.fetch

        def spy(client, uids, items, *args, **kwargs):
            if b"BODY.PEEK[]" in items:
                fetches.append((sorted(uids), self.cursor()))
            return fetch(client, uids, items, *args, **kwargs)

        with patch.object(reader, "GROUP_BYTES", GROUP_BYTES), patch.object(IMAPClient, "fetch", spy):
            self.assertEqual(self.sync(self.anna), 5)

        # The stranger's mail matches nothing: the cursor passes it with the first group.
        self.assertEqual(fetches, [(uids[:2], start), (uids[2:4], stranger), (uids[4:], uids[3])])
        self.assertEqual(uids[2], stranger + 1)
        self.assertEqual(self.cursor(), uids[-1])
        for message_id in ids:
            self.assertEqual(len(self.logged(self.candidate, message_id)), 1, message_id)
        self.assertEqual(self.logged(self.candidate, ids[0]).attachment_ids.raw, PORTFOLIO)


@tagged("post_install", "-at_install")
class TestGroupsCommitted(CommittedMailboxCase):
    """Groups committed as in production, with real commits, in data of the test's own (committed,
    then deleted); the test's own transaction is left alone."""

    login_prefix = "groups"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        (cls.address,) = cls.passwords

    def setUp(self):
        super().setUp()
        self.user = self.users

    def committed(self):
        """What another transaction sees: ``({Message-ID: times logged on the candidate}, Inbox cursor)``."""
        with self.registry.cursor() as cr:
            logged = self.logged(cr)
            cr.execute(
                "SELECT last_uid FROM cats_mail_sync_folder WHERE user_id = %s AND role = 'inbox'",
                [self.user.id],
            )
            return logged, cr.fetchone()[0]

    def test_a_connection_lost_between_two_groups_logs_the_first_once_and_the_rest_at_the_next_run(self):
        ids, uids = [], []
        for number in range(4):
            ids.append(f"<portfolio{number}.{self.token}@x>")
            mail = make_mail(
                self.candidate_address,
                self.address,
                message_id=ids[-1],
                attachments=[("portfolio.txt", PORTFOLIO, "application", "octet-stream")],
            )
            uids.append(self.imap.append(self.address, "INBOX", mail))
        messages, seen = reader.MailboxReader.messages, []
        sync = self.env_real["cats_mail_sync.sync"]
        with FaultProxy(("127.0.0.1", self.imap.ssl_port)) as proxy:
            # The server moves behind the proxy, with no change to the settings (the password
            # is saved for the proxy's port: it goes only where it was saved for).
            self.cr_real.execute(
                "UPDATE res_users SET mailbox_imap_port = %s WHERE id = %s", [proxy.port, self.user.id]
            )
            self.user.invalidate_recordset(["mailbox_imap_port"])
            self.env_real["cats_mail_sync.credentials"]._save_password(
                self.user, self.imap.users[self.address]
            )
            self.commit()

            def cut_before_the_second_group(mailbox, group):
                seen.append((group, self.committed()))
                if len(seen) == 2:
                    proxy.cut_all()
                return messages(mailbox, group)

            with (
                as_in_production(),
                patch.object(reader, "GROUP_BYTES", GROUP_BYTES),
                patch.object(reader.MailboxReader, "messages", cut_before_the_second_group),
            ):
                self.assertEqual(sync._sync(self.user), 2)
            self.commit()

            first = {ids[0]: 1, ids[1]: 1}
            start = seen[0][1][1]
            self.assertEqual(seen, [(uids[:2], ({}, start)), (uids[2:], (first, uids[1]))])
            self.assertEqual(self.committed(), (first, uids[1]))
            self.assertEqual(self.user.mailbox_state, "active")
            self.assertIn("Retrying", self.user.mailbox_error)

            proxy.pass_through()
            with as_in_production(), patch.object(reader, "GROUP_BYTES", GROUP_BYTES):
                self.assertEqual(sync._sync(self.user), 2)
            self.commit()

        self.assertEqual(self.committed(), (dict.fromkeys(ids, 1), uids[-1]))
        self.assertFalse(self.user.mailbox_error)
