"""What the addon makes in the database is there, as PostgreSQL reads it, on whichever Odoo series
runs (Odoo 19 ignores _sql_constraints without a word: see series.unique)."""

import psycopg2

from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from .. import database

UNIQUE = {
    "cats_mail_sync_folder_role_unique": "UNIQUE (user_id, role)",
    "cats_mail_sync_token_one_per_provider": "UNIQUE (user_id, provider)",
    "cats_mail_sync_removal_once_per_record": "UNIQUE (message_id, model, res_id)",
}


@tagged("post_install", "-at_install")
class TestDatabase(TransactionCase):
    def test_the_unique_constraints_exist(self):
        self.env.cr.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = ANY(%s)",
            [list(UNIQUE)],
        )
        self.assertEqual(dict(self.env.cr.fetchall()), UNIQUE)

    def test_a_mailbox_cannot_get_a_second_inbox(self):
        user = new_test_user(self.env, login="una", groups="base.group_user")
        folders = self.env["cats_mail_sync.folder"]
        inbox = {
            "user_id": user.id,
            "role": "inbox",
            "uidvalidity": 1,
            "last_uid": 0,
            "synced_at": "2026-12-01",
        }
        folders.create({**inbox, "name": "INBOX"})
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
            folders.create({**inbox, "name": "Other"})
            self.env.flush_all()

    def test_the_objects_made_beside_the_orm_exist(self):
        self.env.cr.execute("SELECT indexname FROM pg_indexes")
        indexes = {row[0] for row in self.env.cr.fetchall()}
        self.env.cr.execute("SELECT proname FROM pg_proc")
        functions = {row[0] for row in self.env.cr.fetchall()}
        self.env.cr.execute("SELECT table_name, column_name FROM information_schema.columns")
        columns = set(self.env.cr.fetchall())
        for thing in database.OBJECTS:
            with self.subTest(thing.name):
                if isinstance(thing, database.Index):
                    self.assertIn(thing.name, indexes)
                elif isinstance(thing, database.Function):
                    self.assertIn(thing.name, functions)
                else:
                    self.assertIn((thing.table, thing.name), columns)
