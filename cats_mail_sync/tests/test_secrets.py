"""Mailbox passwords are kept encrypted, under a key outside the database."""

import base64
import contextlib
import importlib.util
import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from unittest.mock import patch

from cryptography.fernet import Fernet, InvalidToken

from odoo import tools
from odoo.cli.command import commands
from odoo.exceptions import UserError
from odoo.tests import tagged

import odoo.addons

from ..cli.cats_mail_sync_rotate_key import CatsMailSyncRotateKey, rotate_secrets
from ..mailbox_client import connection, errors
from ..models import cats_mail_sync_secret as secret
from .common import ANNA, BERT, PASSWORDS, MailboxCase, make_mail

MODULE = Path(__file__).resolve().parent.parent
MIGRATIONS = MODULE / "migrations"
TEXT_TYPES = ("character", "character varying", "text", "json", "jsonb", "bytea")


def load_migration(version="1.1.0"):
    """A migration script, loaded as Odoo loads it (its name is no module name)."""
    name = "cats_mail_sync_migration_" + version.replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, MIGRATIONS / version / "post-migrate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def like_pattern(text):
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def encodings(text):
    """``text`` as it is and in the base64 forms it could be kept in."""
    raw = text.encode()
    forms = {text}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms |= {encoded, encoded.rstrip("=")}
    return forms


@tagged("post_install", "-at_install")
class TestSecrets(MailboxCase):
    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def patch_config(self, **options):
        patcher = patch.dict(tools.config.options, options)
        patcher.start()
        self.addCleanup(patcher.stop)

    def use_keys(self, *keys):
        """From now on in this test, the keys are these, set in the configuration file."""
        self.patch_config(**{secret.KEY_OPTION: ",".join(keys)})

    def use_empty_data_dir(self):
        """From now on in this test, keys come from a key file in an empty data directory."""
        directory = Path(tempfile.mkdtemp(prefix="cats-mail-sync-keys-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        self.patch_config(data_dir=str(directory), **{secret.KEY_OPTION: False})
        environment = patch.dict(os.environ)
        environment.start()
        self.addCleanup(environment.stop)
        os.environ.pop(secret.KEY_VARIABLE, None)
        return directory

    def column(self, user):
        """What ``res_users.cats_mailbox_password`` holds for ``user``."""
        self.env.flush_all()
        self.env.cr.execute("SELECT cats_mailbox_password FROM res_users WHERE id = %s", [user.id])
        return self.env.cr.fetchone()[0]

    def count_readable_secrets(self):
        """How many secrets of the database the keys in force can read."""
        self.env.flush_all()
        fernet, readable = secret.cipher(), 0
        for table, column in secret.COLUMNS:
            self.env.cr.execute(
                tools.SQL(
                    "SELECT %s FROM %s WHERE %s IS NOT NULL",
                    tools.SQL.identifier(column),
                    tools.SQL.identifier(table),
                    tools.SQL.identifier(column),
                )
            )
            for (token,) in self.env.cr.fetchall():
                with contextlib.suppress(InvalidToken):
                    fernet.decrypt(token.encode())
                    readable += 1
        return readable

    def find_in_database(self, texts):
        """Every "table.column" of the database where one of ``texts`` occurs."""
        self.env.flush_all()
        cr = self.env.cr
        cr.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type
              FROM information_schema.columns c
              JOIN information_schema.tables t
                ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.data_type IN %s
             ORDER BY c.table_name, c.column_name
            """,
            [TEXT_TYPES],
        )
        columns = defaultdict(list)
        for table, column, data_type in cr.fetchall():
            name = tools.SQL.identifier(column)
            # bytea as text is hexadecimal: read its bytes instead.
            value = (
                tools.SQL("encode(%s, 'escape')", name)
                if data_type == "bytea"
                else tools.SQL("%s::text", name)
            )
            columns[table].append((column, value))
        patterns = sorted(like_pattern(text) for text in texts)

        def hit(table, values):
            condition = tools.SQL(" OR ").join(
                tools.SQL("%s LIKE ANY(%s)", value, patterns) for value in values
            )
            cr.execute(tools.SQL("SELECT 1 FROM %s WHERE %s LIMIT 1", tools.SQL.identifier(table), condition))
            return bool(cr.fetchone())

        found = []
        for table, values in columns.items():
            if hit(table, [value for _column, value in values]):
                found += [f"{table}.{column}" for column, value in values if hit(table, [value])]
        return found

    def auth_failures(self):
        """Failed logins Dovecot saw, read from its own log."""
        return (self.imap.root / "dovecot.log").read_text().count("auth failed")

    def assert_password_asked_again(self):
        """The saved password cannot be read: no login with anything else, the recruiter is told."""
        with self.assertRaises(errors.SecretUnreadable):
            self.env["cats_mail_sync.secret"]._get(self.anna, "cats_mailbox_password")
        failures = self.auth_failures()
        with patch.object(connection, "open_imap", wraps=connection.open_imap) as open_imap:
            self.assertEqual(self.sync(self.anna), 0)
            with self.assertRaisesRegex(UserError, "Enter your password again"):
                self.anna.action_mailbox_activate()
        open_imap.assert_not_called()
        self.assertEqual(self.auth_failures(), failures)
        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertIn("Enter your password again", self.anna.mailbox_error)

    def assert_mailbox_works(self, message_id):
        """Anna's mailbox logs in and logs mail."""
        self.assertEqual(self.anna.mailbox_state, "active")
        self.deliver(self.anna, make_mail("carla.candidate@example.com", ANNA, message_id=message_id))
        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertFalse(self.anna.mailbox_error)
        self.assertEqual(len(self.logged(self.candidate, message_id)), 1)

    def rotate(self, databases=None, keep_old=False, broken=()):
        """Run the command's rotation on this test's database; (exit status, everything printed)."""

        def rotate_database(command, database, keys):
            if database in broken:
                raise RuntimeError("connection refused")
            return rotate_secrets(self.env, keys)

        output = io.StringIO()
        with (
            patch.object(CatsMailSyncRotateKey, "rotate_database", rotate_database),
            contextlib.redirect_stdout(output),
            contextlib.redirect_stderr(output),
        ):
            status = CatsMailSyncRotateKey().rotate(databases or [self.env.cr.dbname], keep_old=keep_old)
        return status, output.getvalue()

    # ------------------------------------------------------------------
    # Storage
    # ------------------------------------------------------------------

    def test_password_and_key_are_nowhere_in_the_database(self):
        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        self.env["cats_mail_sync.setup"].create(
            {"user_id": self.bert.id, "email": BERT, "password": PASSWORDS[BERT]}
        )
        keys = secret.configured_keys()[0]

        self.assertEqual(self.find_in_database(encodings(PASSWORDS[ANNA]) | encodings(PASSWORDS[BERT])), [])
        self.assertEqual(self.find_in_database(keys), [])
        # and yet the mailbox logs in with it
        self.anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "active")

    def test_key_file_is_made_readable_by_its_owner_only(self):
        directory = self.use_empty_data_dir()
        umask = os.umask(0)
        try:
            keys, source = secret.configured_keys()
        finally:
            os.umask(umask)

        self.assertEqual(source, "file")
        path = directory / secret.KEY_FILE
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        self.assertEqual(len(keys), 1)
        Fernet(keys[0])  # a valid key
        self.assertEqual(secret.configured_keys(), (keys, "file"), "made once, then read")
        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.assertEqual(secret.configured_keys(), (keys, "file"))

    # ------------------------------------------------------------------
    # A key that cannot read the password
    # ------------------------------------------------------------------

    def test_missing_key_file_asks_for_the_password_again(self):
        self.anna.action_mailbox_activate()
        self.use_empty_data_dir()  # the key file the password was encrypted with is gone

        self.assert_password_asked_again()

        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.assert_mailbox_works("<after-lost-key@x>")

    def test_wrong_key_asks_for_the_password_again(self):
        self.anna.action_mailbox_activate()
        self.use_keys(Fernet.generate_key().decode())

        self.assert_password_asked_again()

        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        self.assert_mailbox_works("<after-wrong-key@x>")

    def test_invalid_key_is_a_password_that_cannot_be_read(self):
        self.anna.action_mailbox_activate()
        self.use_keys("not-a-fernet-key")

        self.assert_password_asked_again()

    # ------------------------------------------------------------------
    # Migration from 18.0.1.0.0, which kept passwords in clear
    # ------------------------------------------------------------------

    def test_migration_encrypts_passwords_kept_in_clear(self):
        migration = load_migration()
        bert_token = self.column(self.bert)
        self.env.cr.execute(
            "UPDATE res_users SET cats_mailbox_password = %s WHERE id = %s", [PASSWORDS[ANNA], self.anna.id]
        )

        migration.migrate(self.env.cr, "18.0.1.0.0")

        token = self.column(self.anna)
        self.assertTrue(migration.looks_like_token(token))
        self.assertEqual(
            self.env["cats_mail_sync.secret"]._get(self.anna, "cats_mailbox_password"), PASSWORDS[ANNA]
        )
        self.assertEqual(self.column(self.bert), bert_token, "already encrypted: left as it is")
        self.env.cr.execute(
            "SELECT id FROM res_users WHERE cats_mailbox_password LIKE ANY(%s)",
            [[like_pattern(text) for text in encodings(PASSWORDS[ANNA])]],
        )
        self.assertEqual(self.env.cr.fetchall(), [])

        migration.migrate(self.env.cr, "18.0.1.0.0")
        self.assertEqual(self.column(self.anna), token, "a second run changes nothing")

        # Kept without the servers it was saved for, it goes nowhere until 18.0.1.3.0 binds it
        # (an upgrade from 18.0.1.0.0 runs both).
        with self.assertRaisesRegex(UserError, "saved for another server or login"):
            self.anna.action_mailbox_activate()
        load_migration("1.3.0").migrate(self.env.cr, "18.0.1.0.0")
        self.anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "active")

    def test_migration_leaves_unreadable_tokens_and_clears_old_assistant_passwords(self):
        migration = load_migration()
        foreign = Fernet(Fernet.generate_key()).encrypt(b"encrypted-elsewhere").decode()
        cr = self.env.cr
        self.env.flush_all()
        cr.execute("UPDATE res_users SET cats_mailbox_password = %s WHERE id = %s", [foreign, self.anna.id])
        cr.execute("UPDATE res_users SET cats_mailbox_password = '' WHERE id = %s", [self.bert.id])
        # 18.0.1.0.0's assistant kept what was typed in a plain "password" column.
        setup = self.env["cats_mail_sync.setup"].create({"user_id": self.bert.id, "email": BERT})
        self.env.flush_all()
        cr.execute("ALTER TABLE cats_mail_sync_setup ADD COLUMN password varchar")
        cr.execute("UPDATE cats_mail_sync_setup SET password = %s WHERE id = %s", [PASSWORDS[BERT], setup.id])

        migration.migrate(cr, "18.0.1.0.0")

        self.assertEqual(self.column(self.anna), foreign, "not encrypted a second time")
        self.assertIsNone(self.column(self.bert), "empty is no password")
        self.assertEqual(self.find_in_database(encodings(PASSWORDS[BERT])), [])

    # ------------------------------------------------------------------
    # Key rotation
    # ------------------------------------------------------------------

    def test_reencrypt_moves_every_secret_to_the_new_key(self):
        store = self.env["cats_mail_sync.secret"]
        old = secret.configured_keys()[0]
        new = Fernet.generate_key().decode()
        readable = self.count_readable_secrets()

        self.assertEqual(store._reencrypt([new, *old]), readable)

        self.use_keys(new)
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "active")
        self.use_keys(*old)
        with self.assertRaises(errors.SecretUnreadable):
            self.saved_password(self.anna)

    def test_command_is_found_by_odoo(self):
        self.assertIs(commands.get("cats_mail_sync_rotate_key"), CatsMailSyncRotateKey)
        self.assertTrue((MODULE / "cli").is_dir(), "Odoo imports the addons that have a cli folder")
        # As an administrator would see it: "odoo help" lists it. Odoo's addons path, without the
        # data directory's folder while it holds no module (Odoo names it there, then refuses it).
        with_modules = [path for path in odoo.addons.__path__ if any(Path(path).glob("*/__manifest__.py"))]
        addons_path = ",".join(with_modules)
        listing = subprocess.run(
            [sys.executable, "-m", "odoo", f"--addons-path={addons_path}", "help"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        self.assertIn("cats_mail_sync_rotate_key", listing)

    def test_command_prints_a_new_key_only_when_asked(self):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            CatsMailSyncRotateKey().run(["--new-key"])
        Fernet(output.getvalue().strip())

    def test_command_rotates_the_key_file(self):
        directory = self.use_empty_data_dir()
        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        self.bert.write({"mailbox_password": PASSWORDS[BERT]})
        old = secret.configured_keys()[0]
        count = self.count_readable_secrets()

        status, output = self.rotate()

        self.assertEqual(status, 0, output)
        self.assertIn(f"{self.env.cr.dbname}: {count} secrets encrypted with the new key", output)
        keys, source = secret.configured_keys()
        self.assertEqual(source, "file")
        self.assertEqual(len(keys), 1, "the old key is gone")
        self.assertNotEqual(keys, old)
        self.assertEqual(stat.S_IMODE((directory / secret.KEY_FILE).stat().st_mode), 0o600)
        for text in [*keys, *old, PASSWORDS[ANNA], PASSWORDS[BERT]]:
            self.assertNotIn(text, output)
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.anna.action_mailbox_activate()
        self.use_keys(*old)
        with self.assertRaises(errors.SecretUnreadable):
            self.saved_password(self.anna)

    def test_command_keeps_the_old_keys_when_asked_or_when_a_database_failed(self):
        self.use_empty_data_dir()
        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        old = secret.configured_keys()[0]

        status, output = self.rotate(keep_old=True)
        self.assertEqual(status, 0, output)
        keys = secret.configured_keys()[0]
        self.assertEqual(keys[1:], old)
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])

        status, output = self.rotate([self.env.cr.dbname, "other_database"], broken={"other_database"})
        self.assertEqual(status, 1)
        self.assertIn("other_database", output)
        newest = secret.configured_keys()[0]
        self.assertEqual(newest[1:], keys, "the other database still needs its keys")
        self.use_keys(newest[0])
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.use_keys(*old)
        with self.assertRaises(errors.SecretUnreadable):
            self.saved_password(self.anna)

    def test_command_uses_the_first_configured_key(self):
        directory = self.use_empty_data_dir()
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        self.use_keys(old)
        self.anna.write({"mailbox_password": PASSWORDS[ANNA]})
        self.use_keys(new, old)  # the administrator put a new key first

        status, output = self.rotate()

        self.assertEqual(status, 0, output)
        self.assertIn("remove the other keys", output)
        for text in (old, new, PASSWORDS[ANNA]):
            self.assertNotIn(text, output)
        self.assertFalse((directory / secret.KEY_FILE).exists(), "no key file is made")
        self.use_keys(new)  # and removed the old one
        self.assertEqual(self.saved_password(self.anna), PASSWORDS[ANNA])
        self.use_keys(old)
        with self.assertRaises(errors.SecretUnreadable):
            self.saved_password(self.anna)

    def test_command_refuses_a_data_dir_without_key_file(self):
        directory = self.use_empty_data_dir()

        status, output = self.rotate()

        self.assertEqual(status, 1)
        self.assertIn("no key file", output)
        self.assertFalse((directory / secret.KEY_FILE).exists())
