"""18.0.1.1.0: mailbox passwords, kept in clear until now, are encrypted.

Version 18.0.1.0.0 kept each recruiter's mailbox password as it was typed in
``res_users.cats_mailbox_password``; from now on that column holds Fernet tokens
(see ``models/cats_mail_sync_secret.py``). Running this again changes nothing.
"""

import base64
import logging
import re

from cryptography.fernet import InvalidToken

from odoo.addons.cats_mail_sync.mailbox_client import errors
from odoo.addons.cats_mail_sync.mailbox_client.connection import resolve
from odoo.addons.cats_mail_sync.models.cats_mail_sync_connector import allowed_private_hosts
from odoo.addons.cats_mail_sync.models.cats_mail_sync_secret import cipher

_logger = logging.getLogger(__name__)

# A Fernet token, in URL-safe base64: version byte 0x80, timestamp (8 bytes), IV (16),
# AES blocks (16 each, at least one), HMAC (32).
TOKEN_PATTERN = re.compile(r"gA[A-Za-z0-9_-]+={0,2}")
TOKEN_OVERHEAD = 1 + 8 + 16 + 32


def looks_like_token(value):
    """Whether ``value`` is shaped like a Fernet token (whatever key made it)."""
    if not TOKEN_PATTERN.fullmatch(value) or len(value) % 4:
        return False
    size = len(base64.urlsafe_b64decode(value)) - TOKEN_OVERHEAD
    return size >= 16 and size % 16 == 0


def readable(fernet, value):
    """Whether ``value`` is a token one of the keys in force decrypts."""
    try:
        fernet.decrypt(value.encode())
    except InvalidToken:
        return False
    return True


def encrypt_plain_secrets(cr):
    """Encrypt, in place, every mailbox password still kept in clear; the number encrypted."""
    cr.execute(
        """SELECT 1 FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND table_name = 'res_users' AND column_name = 'cats_mailbox_password'"""
    )
    if not cr.fetchone():
        return 0
    fernet = cipher()
    cr.execute("SELECT id, cats_mailbox_password FROM res_users WHERE cats_mailbox_password IS NOT NULL")
    done = 0
    for user_id, value in cr.fetchall():
        if not value:
            # Empty is "no password" (as the secret store writes it): say so with NULL.
            cr.execute("UPDATE res_users SET cats_mailbox_password = NULL WHERE id = %s", [user_id])
            continue
        if readable(fernet, value):
            continue  # already encrypted with a key in force
        if looks_like_token(value):
            # Encrypted, but with a key no longer configured: encrypting it again would turn
            # it into a wrong password; left unreadable, its owner is asked to type it again.
            _logger.warning("The mailbox password of user %s cannot be read with any key", user_id)
            continue
        cr.execute(
            "UPDATE res_users SET cats_mailbox_password = %s WHERE id = %s",
            [fernet.encrypt(value.encode()).decode(), user_id],
        )
        done += 1
    return done


def drop_plain_setup_passwords(cr):
    """Drop the column where 18.0.1.0.0's set-up assistant kept typed passwords in clear.

    The assistant's ``password`` field is no longer stored (what is typed there is kept
    encrypted in ``cats_password``), but the ORM leaves the old column and its values.
    """
    cr.execute(
        """SELECT 1 FROM ir_model_fields
            WHERE model = 'cats_mail_sync.setup' AND name = 'password' AND store"""
    )
    if cr.fetchone():
        return
    cr.execute("ALTER TABLE IF EXISTS cats_mail_sync_setup DROP COLUMN IF EXISTS password")


def allow_private_hosts_in_use(cr):
    """Keep working the mailboxes that used servers on private networks, which this version
    refuses by default: their hosts join ``cats_mail_sync.allow_private_hosts``."""
    cr.execute("SELECT value FROM ir_config_parameter WHERE key = 'cats_mail_sync.allow_private_hosts'")
    row = cr.fetchone()
    if allowed_private_hosts(row and row[0]) is True:
        return []
    cr.execute(
        """SELECT DISTINCT lower(host) FROM (
               SELECT mailbox_imap_host AS host FROM res_users WHERE mailbox_state IN ('active', 'error')
               UNION SELECT mailbox_smtp_host FROM res_users WHERE mailbox_state IN ('active', 'error')
           ) hosts WHERE host IS NOT NULL"""
    )
    private = []
    for (host,) in cr.fetchall():
        try:
            resolve(host, 993)
        except errors.HostNotAllowed:
            private.append(host)
        except errors.MailboxError:
            continue
    if private:
        allowed = sorted(set(allowed_private_hosts(row and row[0]) or ()) | set(private))
        cr.execute(
            """INSERT INTO ir_config_parameter (key, value, create_date, write_date)
               VALUES ('cats_mail_sync.allow_private_hosts', %s,
                       now() at time zone 'UTC', now() at time zone 'UTC')
               ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value""",
            [", ".join(allowed)],
        )
        _logger.warning("Mail servers on private networks kept allowed: %s", ", ".join(private))
    return private


def migrate(cr, version):
    if not version:
        return
    done = encrypt_plain_secrets(cr)
    drop_plain_setup_passwords(cr)
    allow_private_hosts_in_use(cr)
    _logger.info("Encrypted %s mailbox passwords kept in clear", done)
