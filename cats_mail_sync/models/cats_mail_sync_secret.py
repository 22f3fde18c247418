"""Where mailbox secrets are kept: encrypted, in columns no ORM field can reach.

Each secret lives in a column of its owner's table that has no ORM field (the
``auth_totp`` pattern), so no read, export, search or group-by can return it,
and it is encrypted with Fernet under a key that is not in the database: the
``cats_mail_sync_key`` option of the Odoo configuration file, else the
environment variable ``CATS_MAIL_SYNC_KEY``, else a key file that is created,
mode 0600, in Odoo's data directory on first use. Each of these may hold
several keys, separated by commas or lines: the first encrypts, all decrypt,
which is how a key is rotated (see ``odoo cats_mail_sync_rotate_key``).

A secret may be bound to the places it may go to: each place is a server and a
login, ``(host, port, login)``. The places are encrypted with the secret (JSON
``{"secret": ..., "places": [...]}``), so that changing a host in the database,
through the ORM or in SQL, cannot send the secret anywhere else: a bound secret
is only ever read for one of its places.
"""

import json
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from odoo import api, models, tools
from odoo.exceptions import UserError

from ..mailbox_client import errors

_logger = logging.getLogger(__name__)

KEY_OPTION = "cats_mail_sync_key"
KEY_VARIABLE = "CATS_MAIL_SYNC_KEY"
KEY_FILE = "cats_mail_sync.key"
# (table, column) of every secret the store keeps; each owner creates its column.
COLUMNS = (
    ("res_users", "cats_mailbox_password"),
    ("cats_mail_sync_setup", "cats_password"),
    ("cats_mail_sync_token", "cats_refresh_token"),
    ("cats_mail_sync_token", "cats_access_token"),
)


def place(host, port, login):
    """Where a secret may go: ``(host, port, login)``, host and login in lower case, the
    host without a trailing dot; None without a host."""
    host = (host or "").strip().lower().rstrip(".")
    if not host:
        return None
    return (host, int(port or 0), (login or "").strip().lower())


def seal(value, places):
    return json.dumps({"secret": value, "places": sorted({tuple(p) for p in places if p})})


def unseal(plain):
    """``(secret, places)`` of a decrypted secret; places None for one kept without (before
    18.0.1.3.0), which is then never given for a place."""
    try:
        content = json.loads(plain)
    except ValueError:
        return plain, None
    if not (isinstance(content, dict) and isinstance(content.get("secret"), str)):
        return plain, None
    places = content.get("places")
    if not isinstance(places, list):
        return content["secret"], None
    return content["secret"], frozenset(tuple(p) for p in places)


def key_file():
    return Path(tools.config["data_dir"]) / KEY_FILE


def configured_keys():
    """The keys in force, newest first, and where they come from."""
    if tools.config.get(KEY_OPTION):
        return _split(tools.config[KEY_OPTION]), "config"
    if os.environ.get(KEY_VARIABLE):
        return _split(os.environ[KEY_VARIABLE]), "environment"
    path = key_file()
    if not path.exists():
        write_key_file([Fernet.generate_key().decode()])
        _logger.info("Created the mailbox secrets key file %s", path)
    return _split(path.read_text()), "file"


def write_key_file(keys):
    """Write ``keys`` (newest first) to the key file, readable by its owner only."""
    path = key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(keys) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _split(text):
    return [key.strip() for key in text.replace(",", "\n").splitlines() if key.strip()]


def cipher(keys=None):
    try:
        return MultiFernet([Fernet(key) for key in keys or configured_keys()[0]])
    except (ValueError, TypeError):
        _logger.error("The mailbox secrets key is not a valid Fernet key; secrets cannot be read.")
        raise errors.SecretUnreadable() from None


class CatsMailSyncSecret(models.AbstractModel):
    """Keep and read secrets (passwords, tokens) of mailboxes, encrypted."""

    _name = "cats_mail_sync.secret"
    _description = "Mailbox secret store"

    @api.model
    def _put(self, record, column, value, places=()):
        """Keep ``value`` (or nothing, when empty) as ``record``'s secret ``column``, bound to
        ``places`` (see :func:`place`): it is then only ever read for one of them."""
        record.ensure_one()
        try:
            token = cipher().encrypt(seal(value, places).encode()).decode() if value else None
        except errors.SecretUnreadable:
            raise UserError(
                self.env._(
                    "This Odoo server's key for mailbox passwords is not valid: ask your administrator."
                )
            ) from None
        self.env.cr.execute(
            tools.SQL(
                "UPDATE %s SET %s = %s WHERE id = %s",
                tools.SQL.identifier(record._table),
                tools.SQL.identifier(self._column(record, column)),
                token,
                record.id,
            )
        )

    @api.model
    def _get(self, record, column, place=None):
        """``record``'s secret, or None.

        With ``place`` (see :func:`place`), only if the secret was kept for that place:
        raises :class:`errors.SecretNotForServer` otherwise. Raises
        :class:`errors.SecretUnreadable` when the key changed.
        """
        secret, places = self._read(record, column)
        if secret is not None and place is not None and place not in (places or ()):
            raise errors.SecretNotForServer()
        return secret

    @api.model
    def _places(self, record, column):
        """The places ``record``'s secret was kept for (empty without secret); raises
        :class:`errors.SecretUnreadable` when the key changed."""
        return self._read(record, column)[1] or frozenset()

    @api.model
    def _read(self, record, column):
        record.ensure_one()
        token = self._token(record, column)
        if not token:
            return None, None
        try:
            return unseal(cipher().decrypt(token.encode()).decode())
        except InvalidToken:
            raise errors.SecretUnreadable() from None

    @api.model
    def _has(self, record, column):
        """Whether ``record`` keeps a secret ``column`` (readable or not)."""
        return bool(self._token(record, column))

    @api.model
    def _token(self, record, column):
        self.env.cr.execute(
            tools.SQL(
                "SELECT %s FROM %s WHERE id = %s",
                tools.SQL.identifier(self._column(record, column)),
                tools.SQL.identifier(record._table),
                record.id,
            )
        )
        row = self.env.cr.fetchone()
        return row and row[0]

    @api.model
    def _column(self, record, column):
        if (record._table, column) not in COLUMNS:
            raise ValueError(f"{record._table}.{column} is not a secret column")
        return column

    @api.model
    def _reencrypt(self, keys):
        """Encrypt every secret of this database with the first of ``keys``; the number done.

        What is encrypted (the secret and its places) stays as it is. Secrets no key can
        read are left as they are (their owners are asked to type them again).
        """
        rotator, done = cipher(keys), 0
        for table, column in COLUMNS:
            self.env.cr.execute(
                tools.SQL(
                    "SELECT id, %s FROM %s WHERE %s IS NOT NULL",
                    tools.SQL.identifier(column),
                    tools.SQL.identifier(table),
                    tools.SQL.identifier(column),
                )
            )
            for row_id, token in self.env.cr.fetchall():
                try:
                    new = rotator.rotate(token.encode()).decode()
                except InvalidToken:
                    _logger.warning("A secret in %s (id %s) cannot be read with any key", table, row_id)
                    continue
                self.env.cr.execute(
                    tools.SQL(
                        "UPDATE %s SET %s = %s WHERE id = %s",
                        tools.SQL.identifier(table),
                        tools.SQL.identifier(column),
                        new,
                        row_id,
                    )
                )
                done += 1
        return done
