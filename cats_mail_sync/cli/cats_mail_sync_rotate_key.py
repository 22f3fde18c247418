"""``odoo cats_mail_sync_rotate_key``: encrypt the saved mailbox secrets with a new key.

    python3 -m odoo --addons-path=ADDONS cats_mail_sync_rotate_key -c odoo.conf -d DB[,DB2...]

Where the keys are kept decides what it does (see ``models/cats_mail_sync_secret.py``):

* in the key file of Odoo's data directory: a new key is generated and written
  first in the file, every secret of the databases is encrypted with it, then
  the file keeps the new key only (``--keep-old`` keeps the old keys after it,
  for databases sharing the file that are not rotated yet);
* in the configuration file or the environment, which this command cannot
  change: the administrator puts a new key first (``--new-key`` prints one),
  runs the command, which encrypts every secret with that first key, then
  removes the old key.

It prints how many secrets were encrypted again in each database, never a
secret nor a key (but the one ``--new-key`` asks for).
"""

# A command: what it prints is its output.
# pylint: disable=print-used

import argparse
import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from odoo import SUPERUSER_ID, api, tools
from odoo.cli import Command
from odoo.modules.registry import Registry

# Absolute imports, and the file named after the command: Odoo 19 loads an addon's command as
# odoo.cli.<command name>, where relative imports fail (and the command would be "Unknown").
# pylint: disable=odoo-addons-relative-import
from odoo.addons.cats_mail_sync.mailbox_client import errors
from odoo.addons.cats_mail_sync.models import cats_mail_sync_secret as secret

WHERE = {
    "config": f"the {secret.KEY_OPTION} option of the configuration file",
    "environment": f"the environment variable {secret.KEY_VARIABLE}",
}


def rotate_secrets(env, keys):
    """Encrypt every secret of ``env``'s database with the first of ``keys``.

    Returns (encrypted, unreadable): secrets no key can read are left as they are.
    """
    total = 0
    for table, column in secret.COLUMNS:
        env.cr.execute(
            tools.SQL(
                "SELECT count(*) FROM %s WHERE %s IS NOT NULL",
                tools.SQL.identifier(table),
                tools.SQL.identifier(column),
            )
        )
        total += env.cr.fetchone()[0]
    done = env["cats_mail_sync.secret"]._reencrypt(keys)
    return done, total - done


def plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class CatsMailSyncRotateKey(Command):
    """Encrypt the saved mailbox passwords with a new key (cats_mail_sync)"""

    name = "cats_mail_sync_rotate_key"

    def parser(self):
        program = Path(sys.argv[0]).name
        parser = argparse.ArgumentParser(
            prog=f"{'odoo' if program == '__main__.py' else program} {self.name}",
            description=self.__doc__ + ". Other Odoo options (such as --data-dir) are passed on to Odoo.",
        )
        parser.add_argument("-c", "--config", help="the Odoo configuration file")
        parser.add_argument(
            "-d",
            "--database",
            action="append",
            default=[],
            help="the database(s) to rotate, separated by commas (or -d given again)",
        )
        parser.add_argument(
            "--keep-old",
            action="store_true",
            help="with the key file: keep the old keys after the new one, for other databases "
            "sharing the key file that are not rotated yet",
        )
        parser.add_argument(
            "--new-key",
            action="store_true",
            help="print a new key (to put first in the configuration or the environment) and stop",
        )
        return parser

    def run(self, cmdargs):
        parser = self.parser()
        args, odoo_args = parser.parse_known_args(cmdargs)
        if args.new_key:
            print(Fernet.generate_key().decode())
            return
        databases = [name.strip() for names in args.database for name in names.split(",") if name.strip()]
        if not databases:
            parser.error("name the database(s) to rotate with -d")
        config = ["-c", args.config] if args.config else []
        tools.config.parse_config([*config, *odoo_args], setup_logging=True)
        sys.exit(self.rotate(databases, keep_old=args.keep_old))

    def rotate(self, databases, keep_old=False):
        """Encrypt every secret of ``databases`` with the new key; the exit status."""
        if not (tools.config.get(secret.KEY_OPTION) or os.environ.get(secret.KEY_VARIABLE)):
            if not secret.key_file().exists():
                # Not the data directory the server uses (check -c or --data-dir): making a key
                # there would only make the secrets look unreadable.
                print(f"There is no key file {secret.key_file()}: nothing to rotate.", file=sys.stderr)
                return 1
        keys, source = secret.configured_keys()
        try:
            secret.cipher(keys)
        except errors.SecretUnreadable:
            print(f"A key in {WHERE.get(source, 'the key file')} is not a valid Fernet key.", file=sys.stderr)
            return 1
        if source == "file":
            keys = [Fernet.generate_key().decode(), *keys]
            # The new key encrypts from now on; the old ones still read what is not yet rotated,
            # should this run stop half-way.
            secret.write_key_file(keys)
        failed = []
        for database in databases:
            try:
                result = self.rotate_database(database, keys)
            except Exception as error:  # noqa: BLE001 - the other databases are rotated all the same
                print(
                    f"{database}: not rotated ({type(error).__name__}: {str(error).strip()})", file=sys.stderr
                )
                failed.append(database)
                continue
            if result is None:
                print(f"{database}: cats_mail_sync is not installed, nothing to do")
                continue
            done, unreadable = result
            print(f"{database}: {plural(done, 'secret')} encrypted with the new key")
            if unreadable:
                print(
                    f"{database}: {plural(unreadable, 'secret')} cannot be read with any key "
                    "(left as is: their owners are asked to type their password again)"
                )
        if source == "file":
            if keep_old or failed:
                print(f"The key file {secret.key_file()} holds the new key, then the old ones.")
            else:
                secret.write_key_file(keys[:1])
                print(f"The key file {secret.key_file()} holds the new key only.")
        elif len(keys) == 1:
            print(
                f"Only one key is set, in {WHERE[source]}: the secrets were encrypted with it again. "
                f"To change it, put a new key first there ({self.name} --new-key prints one), "
                "run this command again, then remove the old key."
            )
        else:
            print(
                f"The secrets are now encrypted with the first key of {WHERE[source]}: "
                "remove the other keys from there once every database using them is rotated."
            )
        if failed:
            print(f"Not rotated: {', '.join(failed)}; run the command again for them.", file=sys.stderr)
        return 1 if failed else 0

    def rotate_database(self, database, keys):
        """Rotate one database, committed; (encrypted, unreadable), None when the module is absent."""
        with Registry(database).cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            if "cats_mail_sync.secret" not in env:
                return None
            result = rotate_secrets(env, keys)
            cr.commit()  # pylint: disable=invalid-commit
        return result
