"""Upgrade test, run by scripts/upgrade: ``upgrade_check.py PREVIOUS_CONF CURRENT_CONF DATABASE WORKDIR``.

One Dovecot stays up while three Odoo processes run in turn: the previous release
activates a mailbox and logs a mail; ``odoo -u cats_mail_sync`` upgrades to this
checkout; this checkout checks the mailbox and logs the mail that came meanwhile.
"""

import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

# The test servers (harness) ship with the addon's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
from harness.dovecot import Dovecot

RECRUITER, PASSWORD = "upgrade@recruit.example.test", "upgrade-Secret-17"
CANDIDATE = "carla@example.com"

# Run in the previous release's Odoo: a recruiter with an active mailbox and one mail logged.
BEFORE = """
import sys
args = sys.argv[1:]
import odoo
odoo.tools.config.parse_config(["-c", args[0], "-d", args[1]])
with odoo.modules.registry.Registry(args[1]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    env["ir.config_parameter"].set_param("cats_mail_sync.ca_file", args[2])
    recruiter, password, candidate = args[4:7]
    env["hr.candidate"].create({"partner_name": "Carla", "email_from": candidate})
    user = env["res.users"].create({"name": "Una", "login": "una", "email": recruiter})
    user.write({
        "mailbox_email": recruiter, "mailbox_login": recruiter, "mailbox_password": password,
        "mailbox_imap_host": "localhost", "mailbox_imap_port": int(args[3]),
    })
    user.action_mailbox_activate()
    cr.commit()
    print("activated", user.id)
"""

SYNC = """
import sys, odoo
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    env["res.users"]._cron_sync_mailboxes()  # the previous release's scheduled action
    cr.commit()
    cr.execute("SELECT role, uidvalidity, last_uid FROM cats_mail_sync_folder ORDER BY role")
    print("cursors", cr.fetchall())
"""

# Run in this checkout's Odoo, after the upgrade.
AFTER = """
import sys
args = sys.argv[1:]
import odoo
odoo.tools.config.parse_config(["-c", args[0], "-d", args[1]])
with odoo.modules.registry.Registry(args[1]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env["res.users"].search([("login", "=", "una")])
    cr.execute("SELECT cats_mailbox_password FROM res_users WHERE id = %s", [user.id])
    stored = cr.fetchone()[0]
    cr.execute("SELECT role, uidvalidity, last_uid FROM cats_mail_sync_folder ORDER BY role")
    print("cursors", cr.fetchall())
    print("state", user.mailbox_state)
    print("password kept in clear", stored == args[2])
    print("password reads back", user._mailbox_password() == args[2])
    env["cats_mail_sync.sync"]._cron()
    cr.commit()
    user.invalidate_recordset()
    print("state after a run", user.mailbox_state, user.mailbox_error or "")
    cr.execute(
        "SELECT message_id, count(*) FROM mail_message WHERE mailbox_user_id IS NOT NULL GROUP BY message_id"
    )
    print("logged", sorted(cr.fetchall()))
    print("private hosts allowed", env["ir.config_parameter"].get_param("cats_mail_sync.allow_private_hosts"))
"""


def mail(sender, to, message_id):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, message_id
    message["Message-ID"] = message_id
    message.set_content("Hello")
    return message


def run(python, *args):
    done = subprocess.run([python, *args], capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{args[:2]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main(previous_conf, current_conf, database, workdir):
    python = sys.executable
    with Dovecot({RECRUITER: PASSWORD}) as dovecot:
        port = str(dovecot.ssl_port)
        setup = [previous_conf, database, dovecot.ca_file, port, RECRUITER, PASSWORD, CANDIDATE]
        print(run(python, "-c", BEFORE, *setup))
        dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<before-upgrade@x>"))
        before = run(python, "-c", SYNC, previous_conf, database)
        print(before)
        dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<during-upgrade@x>"))
        upgrade = ["-c", current_conf, "-d", database, "-u", "cats_mail_sync", "--stop-after-init"]
        run(python, "-m", "odoo", *upgrade, "--log-level=warn")
        after = run(python, "-c", AFTER, current_conf, database, PASSWORD)
        print(after)
    cursors_before = before.split("cursors ", 1)[1].splitlines()[0]
    expected = {
        f"cursors {cursors_before}": "cursors are kept",
        "state active": "the mailbox stays active",
        "password kept in clear False": "the password is encrypted",
        "password reads back True": "the password still logs in",
        "state after a run active": "the mailbox logs after the upgrade",
        "logged [('<before-upgrade@x>', 1), ('<during-upgrade@x>', 1)]": "each mail once, none lost",
        "private hosts allowed localhost": "mailboxes on a private network keep working",
    }
    failed = [what for line, what in expected.items() if line not in after]
    for line, what in expected.items():
        print(f"{'ok  ' if line in after else 'FAIL'} {what}")
    print(f"{len(expected) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(*sys.argv[1:5])
