"""18.0.1.3.0: each saved mailbox password is bound to the servers it was saved for.

Until now ``res_users.cats_mailbox_password`` held the password alone (encrypted); from
now on it holds the password with the places it may go to, encrypted together (see
``models/cats_mail_sync_secret.py``): the user's IMAP server, port and login and, when
set, the SMTP server, port and login, as saved at the time of the upgrade. A password
kept without places is never sent anywhere. Running this again changes nothing.
"""

import logging

from cryptography.fernet import InvalidToken

from odoo.addons.cats_mail_sync.models.cats_mail_sync_secret import cipher, place, seal, unseal

_logger = logging.getLogger(__name__)


def bind_passwords(cr):
    """Bind every saved password kept without places to its user's saved servers; the number bound."""
    fernet = cipher()
    cr.execute(
        """SELECT id, cats_mailbox_password, mailbox_login, mailbox_imap_host, mailbox_imap_port,
                  mailbox_smtp_host, mailbox_smtp_port
             FROM res_users WHERE cats_mailbox_password IS NOT NULL"""
    )
    done = 0
    for user_id, token, login, imap_host, imap_port, smtp_host, smtp_port in cr.fetchall():
        try:
            secret, places = unseal(fernet.decrypt(token.encode()).decode())
        except InvalidToken:
            # Its owner is asked to type it again, as before.
            _logger.warning("The mailbox password of user %s cannot be read with any key", user_id)
            continue
        if places is not None:
            continue  # already bound
        bound = [place(imap_host, imap_port, login), place(smtp_host, smtp_port, login)]
        cr.execute(
            "UPDATE res_users SET cats_mailbox_password = %s WHERE id = %s",
            [fernet.encrypt(seal(secret, bound).encode()).decode(), user_id],
        )
        done += 1
    return done


def migrate(cr, version):
    if not version:
        return
    _logger.info("Bound %s mailbox passwords to the servers they were saved for", bind_passwords(cr))
