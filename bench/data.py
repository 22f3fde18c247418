"""The benchmark's data: mails in Dovecot mailboxes, recruiters whose mailboxes are set up
for the sync, and candidates their mail matches."""

import random
import ssl
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import imapclient

from odoo import fields

PASSWORD = "bench-Secret"
DOMAIN = "recruit.example.test"
# MULTIAPPEND sends this many mails in one command (Dovecot takes them in one go).
APPEND_CHUNK = 500


def address(name):
    return f"{name}@{DOMAIN}"


def candidate_address(number):
    return f"c{number}@pool.example.com"


def mail(number, recipient, sender=None, attachment=0):
    """A plain mail from ``sender`` (a stranger by default) with an ``attachment``-byte file."""
    message = EmailMessage()
    message["From"] = sender or f"stranger{number}@example.net"
    message["To"] = recipient
    message["Subject"] = f"Mail {number}"
    message["Date"] = "Mon, 02 Jun 2025 09:30:00 +0000"
    message["Message-ID"] = f"<bench-{number}-{recipient}>"
    message.set_content("Hello, here is my news.\n" * 40)
    if attachment:
        data = random.Random(number).randbytes(attachment)
        message.add_attachment(data, maintype="application", subtype="pdf", filename=f"cv-{number}.pdf")
    return message.as_bytes()


def fill(dovecot, login, mails):
    """Put ``mails`` (bytes) in ``login``'s Inbox, many per command."""
    with dovecot.client(login) as client:
        for start in range(0, len(mails), APPEND_CHUNK):
            client.multiappend("INBOX", mails[start : start + APPEND_CHUNK])


def connect(host, port, ca_file):
    """A raw imapclient connection (no Odoo), as the sync's own connections are made."""
    context = ssl.create_default_context(cafile=ca_file)
    return imapclient.IMAPClient(host, port=port, ssl=True, ssl_context=context)


def statuses(dovecot, logins, threads=8):
    """``{login: (Inbox UIDVALIDITY, Inbox last UID, Sent UIDVALIDITY, Sent last UID)}``, read
    directly (this also has Dovecot create each mailbox)."""

    def status(login):
        with dovecot.client(login) as client:
            inbox = client.folder_status("INBOX", [b"UIDVALIDITY", b"UIDNEXT"])
            sent = client.folder_status("Sent", [b"UIDVALIDITY", b"UIDNEXT"])
        found = (inbox[b"UIDVALIDITY"], inbox[b"UIDNEXT"] - 1, sent[b"UIDVALIDITY"], sent[b"UIDNEXT"] - 1)
        return login, found

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(status, logins))


def recruiters(env, dovecot, logins, port, *, active, from_start=False):
    """Users whose mailboxes are ``logins`` on Dovecot (reached at ``port``), set up as an activation
    leaves them, without one connection test each: cursors at the top of each folder, or at
    UID 0 (``from_start``: all mail there is new). ``active``: taken by the scheduled run."""
    users = (
        env["res.users"]
        .with_context(no_reset_password=True, mail_create_nolog=True, tracking_disable=True)
        .create(
            [
                {
                    "name": f"Bench {login}",
                    "login": login,
                    "email": login,
                    "mailbox_email": login,
                    "mailbox_login": login,
                    "mailbox_password": PASSWORD,
                    "mailbox_imap_host": dovecot.host,
                    "mailbox_imap_port": port,
                }
                for login in logins
            ]
        )
    )
    now = fields.Datetime.now()
    found = statuses(dovecot, logins)
    env["cats_mail_sync.folder"].create(
        [
            {
                "user_id": user.id,
                "role": role,
                "name": name,
                "uidvalidity": found[user.login][index],
                "last_uid": 0 if from_start else found[user.login][index + 1],
                "synced_at": now,
            }
            for user in users
            for role, name, index in (("inbox", "INBOX", 0), ("sent", "Sent", 2))
        ]
    )
    users.write({"mailbox_email_confirmed": True})
    users._mailbox_set_state(
        "active" if active else "inactive", mailbox_activated_at=now, mailbox_last_sync_at=now
    )
    return users


def rewind(user):
    """Put ``user``'s Inbox cursor back at UID 0: all its mail is new again."""
    user.mailbox_folder_ids.filtered(lambda folder: folder.role == "inbox").write({"last_uid": 0})


def set_port(user, port):
    """Reach ``user``'s mailbox on ``port`` (the latency proxy, or Dovecot itself), cursors kept;
    its password is saved again for that port (a password goes only where it was saved for)."""
    credentials = user.env["cats_mail_sync.credentials"]
    password = credentials._password(user)
    user.env.cr.execute("UPDATE res_users SET mailbox_imap_port = %s WHERE id = %s", (port, user.id))
    user.invalidate_recordset(["mailbox_imap_port"])
    credentials._save_password(user, password)


def set_state(users, state):
    """Take ``users``' mailboxes out of the scheduled run ("inactive") or back ("active"), as is."""
    if users:
        users.env.cr.execute("UPDATE res_users SET mailbox_state = %s WHERE id = ANY(%s)", (state, users.ids))
        users.invalidate_recordset(["mailbox_state"])


def candidates(env, count):
    """``count`` people a recruiter mails (candidates on Odoo 18, talents on 19)."""
    from odoo.addons.cats_mail_sync import series  # found once Odoo is configured

    people = [
        series.new_person(env, {"partner_name": f"Candidate {i}", "email_from": candidate_address(i)})
        for i in range(count)
    ]
    return env[series.PERSON].browse([person.id for person in people])


def analyze(cr):
    """Refresh the planner's statistics after the benchmark's bulk load, as PostgreSQL's
    autovacuum does in production once a tenth of a table has changed. Where autovacuum is off
    (as on the machine the figures come from) the planner would go on taking res_partner for the
    few rows it had before 10,000 recruiters were made, and match contacts through the wrong
    index: the scan measured 0.61x the raw FETCH instead of 1.0x."""
    cr.execute("ANALYZE")
