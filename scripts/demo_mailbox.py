"""Set up the demo: a local Dovecot with sample mail in two mailboxes, the admin's (active,
synchronized once) and tom's (for the reader to connect from tom's profile, as a recruiter).

Run by scripts/demo with Odoo's Python: ``demo_mailbox.py CONFIG DATABASE STATE_DIR``.
Leaves Dovecot running (scripts/demo stops it) on IMAPS port $CATS_DEMO_IMAP_PORT (9993), prints
what to look at and writes the mailboxes' settings to STATE_DIR/mailboxes.txt.
"""

import base64
import datetime
import os
import shutil
import sys
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import odoo
import odoo.api
import odoo.modules.registry
import odoo.tools

# The test servers (harness) ship with the addon's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
from harness.dovecot import Dovecot
from harness.tls import TestAuthority

RECRUITER = "recruiter@demo.example.test"
PASSWORD = "demo-mailbox-password"
# tom's mailbox: his address in the demo data, a password of its own.
TOM, TOM_PASSWORD = "tom@demo.example.test", "tom-mailbox-password"
IMAP_PORT = int(os.environ.get("CATS_DEMO_IMAP_PORT") or 9993)
SOFIA = "Sofia Jansen <sofia.jansen@example.com>"
MARK = "Mark de Vries <mark.devries@acme.example.com>"
CV = base64.b64decode(
    b"JVBERi0xLjQKMSAwIG9iago8PC9UeXBlL0NhdGFsb2cvUGFnZXMgMiAwIFI+PgplbmRvYmoKMiAwIG9iago8PC9UeXBlL1BhZ2Vz"
    b"L0tpZHNbXS9Db3VudCAwPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg=="
)


def mail(sender, to, subject, text, attachment=None, days_ago=0):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = make_msgid(domain="demo.example.test")
    sent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    message["Date"] = format_datetime(sent)
    message.set_content(text)
    message.add_alternative("".join(f"<p>{line}</p>" for line in text.split("\n")), subtype="html")
    if attachment:
        message.add_attachment(CV, maintype="application", subtype="pdf", filename=attachment)
    return message


def main(config, database, state_dir):
    state = Path(state_dir)
    shutil.rmtree(state / "dovecot", ignore_errors=True)
    authority = TestAuthority(directory=state / "tls")
    dovecot = Dovecot({RECRUITER: PASSWORD, TOM: TOM_PASSWORD}, root=state / "dovecot", tls=authority)
    dovecot.ssl_port = IMAP_PORT  # one port to type in the assistant, the same at every start
    dovecot.start()
    (state / "dovecot.conf.path").write_text(str(dovecot.root / "dovecot.conf"))

    # Mail from before activation: it stays out of Odoo.
    dovecot.append(
        RECRUITER,
        "INBOX",
        mail(SOFIA, RECRUITER, "An old question", "Sent before you activated.", days_ago=30),
    )

    odoo.tools.config.parse_config(["-c", config, "-d", database])
    registry = odoo.modules.registry.Registry(database)
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param("cats_mail_sync.ca_file", str(authority.ca_file))
        env["ir.config_parameter"].set_param("cats_mail_sync.allow_private_hosts", "True")
        admin = env.ref("base.user_admin")
        admin.write(
            {
                "mailbox_email": RECRUITER,
                "mailbox_login": RECRUITER,
                "mailbox_password": PASSWORD,
                "mailbox_imap_host": dovecot.host,
                "mailbox_imap_port": dovecot.ssl_port,
                "mailbox_imap_security": "ssl",
            }
        )
        admin.action_mailbox_activate()
        cr.commit()

        dovecot.append(
            RECRUITER,
            "INBOX",
            mail(
                SOFIA,
                RECRUITER,
                "Application: Certified Welder",
                "Dear recruiter,\nPlease find my CV attached.\nKind regards,\nSofia",
                attachment="CV Sofia Jansen.pdf",
            ),
        )
        dovecot.append(
            RECRUITER,
            "Sent",
            mail(
                RECRUITER,
                f"{SOFIA}, {MARK}",
                "Interview on Tuesday",
                "Hello Sofia, hello Mark,\nTuesday at 10:00 suits us both.",
            ),
        )
        dovecot.append(
            RECRUITER,
            "INBOX",
            mail(MARK, RECRUITER, "Re: Interview on Tuesday", "Confirmed, see you Tuesday.\nMark"),
        )
        dovecot.append(
            RECRUITER,
            "INBOX",
            mail(
                "newsletter@shop.example.net",
                RECRUITER,
                "Black Friday deals",
                "Not about any candidate: never logged.",
            ),
        )
        env["cats_mail_sync.sync"]._cron()
        cr.commit()
        # tom's mailbox, not connected: mail that his own activation will leave out, and that a
        # history ("Also log earlier mail") logs.
        dovecot.append(
            TOM,
            "INBOX",
            mail(SOFIA, TOM, "Questions about the welder job", "Is the job full-time?\nSofia", days_ago=3),
        )
        dovecot.append(
            TOM,
            "Sent",
            mail(TOM, SOFIA, "Re: Questions about the welder job", "Yes, 40 hours a week.\nTom", days_ago=2),
        )
        sofia = env.ref("cats_mail_sync.demo_person_sofia")
        settings = (
            f"IMAP server {dovecot.host}, port {dovecot.ssl_port}, SSL/TLS (the demo's own certificate)\n"
            f"admin: {RECRUITER} / {PASSWORD} (active)\n"
            f"tom: {TOM} / {TOM_PASSWORD} (to connect from tom's profile: Configure)\n"
        )
        (state / "mailboxes.txt").write_text(settings)
        print(f"Mailbox {RECRUITER} active; {admin.mailbox_logged_count} mails logged.")
        print(f"Demo mailboxes ({state / 'mailboxes.txt'}):\n{settings}", end="")
        print(f"Sofia Jansen's page: /odoo/{sofia._name}/{sofia.id}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
