"""What a check that finds nothing new costs, counted: the statements it sends to the database, the
rows it writes and the commands it sends to the mail server, whatever the mailbox holds."""

import imaplib
import re
from contextlib import contextmanager
from unittest.mock import patch

from odoo.sql_db import Cursor

from .common import ANNA, MailboxCase, make_mail

# The statements of an idle check: its lock on the mailbox, the mailbox's settings and password, its
# two folders (search, read), each folder's look-back (nothing to do), the mailbox's two counters,
# the lock let go.
STATEMENTS = 9
# What the least possible check sends (bench's raw check, imapclient alone): CAPABILITY (Python's
# imaplib asks on connecting), LOGIN, a STATUS per folder, LOGOUT.
COMMANDS = ["CAPABILITY", "LOGIN", "STATUS", "STATUS", "LOGOUT"]
ROWS = ("cats_mail_sync_run", "cats_mail_sync_skipped", "mail_message", "ir_attachment", "mail_mail")


class TestIdleCheck(MailboxCase):
    @contextmanager
    def statements(self):
        """The SQL statements sent on the test's cursor."""
        sent, execute = [], Cursor.execute

        def recorded(cr, query, params=None, log_exceptions=True):
            if cr is self.env.cr:
                sent.append(" ".join(str(query).split()))
            return execute(cr, query, params, log_exceptions)

        with patch.object(Cursor, "execute", recorded):
            yield sent

    @contextmanager
    def imap_commands(self):
        """The IMAP commands sent (their names)."""
        sent, command = [], imaplib.IMAP4._command

        def recorded(imap, name, *args):
            sent.append(name)
            return command(imap, name, *args)

        with patch.object(imaplib.IMAP4, "_command", recorded):
            yield sent

    def rows(self):
        counts = {}
        for table in ROWS:
            self.env.cr.execute(f"SELECT count(*) FROM {table}")
            counts[table] = self.env.cr.fetchone()[0]
        return counts

    def idle_check(self):
        """One check with nothing new, from a cold cache (as a new transaction starts): the
        statements and the IMAP commands it sent."""
        self.env.invalidate_all()
        before = self.rows()
        with self.statements() as statements, self.imap_commands() as commands:
            self.assertEqual(self.sync(self.anna), 0)
        self.assertEqual(self.rows(), before, "an idle check writes no row")
        return statements, commands

    def test_an_idle_check_sends_a_handful_of_statements_and_the_least_imap(self):
        self.anna.action_mailbox_activate()
        self.sync(self.anna)
        checks = self.anna.mailbox_checks_since_logged

        statements, commands = self.idle_check()

        self.assertEqual(commands, COMMANDS)
        self.assertLessEqual(len(statements), STATEMENTS, "\n".join(statements))
        writes = [s for s in statements if re.match(r"(INSERT|UPDATE|DELETE)\b", s)]
        self.assertEqual(len(writes), 1, writes)
        self.assertRegex(
            writes[0], r"^UPDATE res_users SET mailbox_last_sync_at = .*, mailbox_checks_since_logged"
        )
        self.assertEqual(self.anna.mailbox_checks_since_logged, checks + 1)

    def test_the_cost_of_an_idle_check_does_not_grow_with_the_mailbox(self):
        self.anna.action_mailbox_activate()
        self.sync(self.anna)
        small = self.idle_check()
        with self.imap.client(ANNA) as client:
            client.multiappend(
                "INBOX",
                [make_mail(f"sender{n}@elsewhere.example.net", ANNA).as_bytes() for n in range(300)],
            )
            client.multiappend(
                "Sent", [make_mail(ANNA, f"to{n}@elsewhere.example.net").as_bytes() for n in range(300)]
            )
        self.sync(self.anna)  # reads the 600 mails (none to log)

        large = self.idle_check()

        self.assertEqual(large[1], small[1], "the same IMAP commands")
        self.assertEqual(len(large[0]), len(small[0]), "as many statements")

    def test_a_check_after_trouble_says_the_mailbox_is_sound_again(self):
        """The short way of an idle check is for a sound mailbox: after trouble, the error goes."""
        self.anna.action_mailbox_activate()
        self.anna.sudo().write({"mailbox_error": "Unreachable.", "mailbox_failures": 2})
        self.sync(self.anna)
        self.assertEqual((self.anna.mailbox_error, self.anna.mailbox_failures), (False, 0))
        self.assertEqual(self.anna.mailbox_state, "active")
