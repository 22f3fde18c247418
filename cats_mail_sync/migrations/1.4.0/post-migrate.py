"""18.0.1.4.0: the recipients of mail logged before move out of its text.

Until now the logger wrote a logged mail's recipients as the first paragraph of its text,
labelled in the sync's language (``<p><b>To:</b> …<br><b>Cc:</b> …<br><b>Bcc:</b> …<br></p>``,
"Aan" for "To" in Dutch); from now on they are kept in ``mailbox_to``, ``mailbox_cc`` and
``mailbox_bcc`` and the chatter names them in the reader's language. The text of every
logged mail that starts with such a paragraph loses it, and the fields get its recipients
as the logger keeps them (``mailbox_to`` only where it is empty). A text that does not start
with exactly such a paragraph is left as it is.
"""

import html
import logging
import re

from odoo.addons.cats_mail_sync.models.cats_mail_sync_logger import _header

_logger = logging.getLogger(__name__)

BATCH = 1000

# The paragraph as the logger wrote it (labels in English or Dutch, the only translation
# shipped; in this order, each at most once) and as Odoo's sanitizer stored it (``<br>``; ``<br/>``
# as it was written is taken too).
# Values were escaped: no ``<`` inside one, and none of them holds a ``</p>``.
HEADER = re.compile(
    r"<p>(?=<b>)"
    r"(?:<b>(?:To|Aan):</b> (?P<to>[^<]*)<br\s*/?>)?"
    r"(?:<b>Cc:</b> (?P<cc>[^<]*)<br\s*/?>)?"
    r"(?:<b>Bcc:</b> (?P<bcc>[^<]*)<br\s*/?>)?"
    r"</p>"
)


def recipients(head):
    """The recipients named by ``head``, the first paragraph of a text: ``{"to", "cc", "bcc"}``
    as the logger keeps them (plain text, cleaned and cut; False when not named); None when
    ``head`` is not the paragraph the logger wrote."""
    found = HEADER.fullmatch(head)
    if not found:
        return None
    return {key: _header(html.unescape(value or "")) for key, value in found.groupdict().items()}


def move_recipients_out_of_bodies(cr, batch=BATCH):
    """Take the recipients' paragraph out of the text of every logged mail that starts with it,
    into the recipient fields; the number of messages changed.

    Only the first paragraph of each text is read (up to the first ``</p>``); the text is cut in
    SQL, so whole texts (some are large) never travel to Python and back."""
    changed, last = 0, 0
    while True:
        cr.execute(
            """SELECT id, left(body, strpos(body, '</p>') + 3), mailbox_to
                 FROM mail_message
                WHERE mailbox_user_id IS NOT NULL AND body LIKE %s AND id > %s
                ORDER BY id LIMIT %s""",
            ["<p><b>%", last, batch],
        )
        rows = cr.fetchall()
        if not rows:
            return changed
        last = rows[-1][0]
        ids, heads, to, cc, bcc = [], [], [], [], []
        for message_id, head, mailbox_to in rows:
            named = recipients(head)
            if named is None:
                continue
            ids.append(message_id)
            heads.append(head)
            to.append(mailbox_to or named["to"] or None)
            cc.append(named["cc"] or None)
            bcc.append(named["bcc"] or None)
        if not ids:
            continue
        cr.execute(
            """UPDATE mail_message m
                  SET body = substr(m.body, length(v.head) + 1),
                      mailbox_to = v.mailbox_to,
                      mailbox_cc = COALESCE(v.mailbox_cc, m.mailbox_cc),
                      mailbox_bcc = COALESCE(v.mailbox_bcc, m.mailbox_bcc)
                 FROM unnest(%s::int[], %s::text[], %s::varchar[], %s::varchar[], %s::varchar[])
                      AS v(id, head, mailbox_to, mailbox_cc, mailbox_bcc)
                WHERE m.id = v.id AND starts_with(m.body, v.head)""",
            [ids, heads, to, cc, bcc],
        )
        changed += cr.rowcount


def migrate(cr, version):
    if not version:
        return
    changed = move_recipients_out_of_bodies(cr)
    _logger.info("Moved the recipients of %s logged mails out of their text", changed)
