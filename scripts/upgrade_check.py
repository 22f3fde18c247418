"""Upgrade test, run by scripts/upgrade: ``upgrade_check.py PREVIOUS_CONF CURRENT_CONF DATABASE WORKDIR``.

One Dovecot stays up while three Odoo processes run in turn: the previous release
activates a mailbox and logs a mail; ``odoo -u cats_mail_sync`` upgrades to this
checkout; this checkout checks the mailbox and logs the mail that came meanwhile.
Then, on the same scratch database, this checkout is uninstalled (no secret may be
left in any table or column) and installed again (it starts clean).
"""

import ast
import json
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

# The test servers (harness) ship with the addon's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
from harness.dovecot import Dovecot

RECRUITER, PASSWORD = "upgrade@recruit.example.test", "upgrade-Secret-17"
CANDIDATE = "carla@example.com"
STRANGER = "stan@example.org"

# PostgreSQL's catalogue of the database's schema, one line per object: relations (tables,
# indexes, sequences, views), columns, functions, constraints and triggers.
CATALOGUE = """
import json, sys, odoo
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.sql_db.db_connect(sys.argv[2]).cursor() as cr:
    cr.execute(\"\"\"
        SELECT 'relation ' || c.relname || ' (' || c.relkind::text || ')' FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()
        UNION ALL SELECT 'index ' || indexname || ' on ' || tablename FROM pg_indexes
         WHERE schemaname = current_schema()
        UNION ALL SELECT 'column ' || table_name || '.' || column_name FROM information_schema.columns
         WHERE table_schema = current_schema()
        UNION ALL SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema()
        UNION ALL SELECT 'constraint ' || c.conname || ' on ' || c.conrelid::regclass::text
          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = current_schema()
        UNION ALL SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger
         WHERE NOT tgisinternal\"\"\")
    print(json.dumps(sorted(row[0] for row in cr.fetchall())))
"""

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
    cr.execute("SELECT body FROM mail_message WHERE message_id = '<before-upgrade@x>'")
    print("recipients in the text", [body.startswith("<p><b>To:</b> ") for (body,) in cr.fetchall()])
"""

# Run in the previous release's Odoo: a mail the cursor moved past without logging it (as the reader
# passed over every mail of a server that labels the header otherwise than Dovecot: Courier).
PASS_OVER = """
import sys, odoo
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    cr.execute("UPDATE cats_mail_sync_folder SET last_uid = %s WHERE role = 'inbox'", [int(sys.argv[3])])
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
    print("password reads back", env["cats_mail_sync.credentials"]._password(user) == args[2])
    bound = env["cats_mail_sync.secret"]._places(user, "cats_mailbox_password")
    print("password bound", sorted(bound) == [("localhost", user.mailbox_imap_port, user.mailbox_login)])
    cr.execute("SELECT body, mailbox_to FROM mail_message WHERE message_id = '<before-upgrade@x>'")
    moved = [(body.startswith("<p><b>"), to == args[3]) for body, to in cr.fetchall()]
    print("recipients out of the text", moved)
    env["cats_mail_sync.sync"]._cron()
    cr.commit()
    user.invalidate_recordset()
    print("state after a run", user.mailbox_state, user.mailbox_error or "")
    cr.execute("SELECT role, uidvalidity, last_uid FROM cats_mail_sync_folder ORDER BY role")
    print("cursors after a run", cr.fetchall())
    cr.execute(
        "SELECT message_id, count(*) FROM mail_message WHERE mailbox_user_id IS NOT NULL GROUP BY message_id"
    )
    print("logged", sorted(cr.fetchall()))
    print("private hosts allowed", env["ir.config_parameter"].get_param("cats_mail_sync.allow_private_hosts"))
    # A stranger who wrote before the upgrade becomes a candidate: the look-back logs the mail.
    env["hr.candidate"].create({"partner_name": "Stan", "email_from": args[4]})
    cr.commit()
    env["cats_mail_sync.sync"]._cron()
    cr.commit()
    looked_back = env["mail.message"].search([("message_id", "=", "<stranger@x>")])
    print("looked back", len(looked_back))
    # The recruiter removes it from the record: recorded, never logged there again.
    env["cats_mail_sync.removal"].with_user(user)._remove(looked_back.with_user(user))
    cr.commit()
    print("removals", env["cats_mail_sync.removal"].search_count([]))
"""


# Run in this checkout's Odoo: the recruiter saves an SMTP server too (an outgoing server is
# made for the proven address), then the module is uninstalled, as an administrator does in Apps.
UNINSTALL = """
import sys, odoo
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env["res.users"].search([("login", "=", "una")])
    user.write({"mailbox_smtp_host": "localhost", "mailbox_smtp_port": 465, "mailbox_password": sys.argv[3]})
    user.write({"mailbox_email_confirmed": True})
    env["ir.mail_server"]._cats_mail_sync_update(user)
    print("recruiter server", user.mailbox_state, user.mailbox_mail_server_id.active)
    cr.commit()
    env["ir.module.module"].search([("name", "=", "cats_mail_sync")]).button_immediate_uninstall()
"""

# Run after the uninstall, with Odoo's configuration only (the module is gone): every text
# column of every table is searched for the password, its base64 forms and any token the
# key decrypts; the module's tables and columns are listed.
TRACES = """
import base64, re, sys
from pathlib import Path
import odoo
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
password = sys.argv[3]
keys = Path(odoo.tools.config["data_dir"], "cats_mail_sync.key").read_text().split()
fernet = MultiFernet([Fernet(key) for key in keys])
forms = {password, base64.b64encode(password.encode()).decode().rstrip("=")}
found = []
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    cr.execute(
        \"\"\"SELECT c.table_name, c.column_name FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
            WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
              AND c.data_type IN ('character varying', 'text', 'jsonb', 'json', 'character')\"\"\"
    )
    for table, column in cr.fetchall():
        cr.execute(f'SELECT "{column}"::text FROM "{table}" WHERE "{column}"::text LIKE ANY(%s)',
                   [["%gAAAAA%"] + ["%" + form + "%" for form in forms]])
        for (value,) in cr.fetchall():
            tokens = re.findall(r"gAAAAA[A-Za-z0-9_=-]+", value)
            readable = []
            for token in tokens:
                try:
                    fernet.decrypt(token.encode())
                    readable.append(token)
                except InvalidToken:
                    pass
            if readable or any(form in value for form in forms):
                found.append(f"{table}.{column}")
    print("secrets left", sorted(set(found)))
    cr.execute(
        \"\"\"SELECT table_name || '.' || column_name FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND (column_name LIKE 'cats%%' OR column_name LIKE 'mailbox%%') ORDER BY 1\"\"\"
    )
    print("columns left", [name for (name,) in cr.fetchall()])
    cr.execute("SELECT count(*) FROM ir_mail_server WHERE smtp_user = %s", [sys.argv[4]])
    print("recruiter servers left", cr.fetchone()[0])
    cr.execute("SELECT count(*) FROM mail_message WHERE message_id = '<before-upgrade@x>'")
    print("logged mail kept", cr.fetchone()[0])
"""

# Run after installing the module again.
REINSTALLED = """
import sys, odoo
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env["res.users"].search([("login", "=", "una")])
    saved = env["cats_mail_sync.secret"]._has(user, "cats_mailbox_password")
    print("reinstalled", user.mailbox_state, user.mailbox_imap_host or "", saved)
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


def left_behind(before, after):
    """The objects of catalogue ``after`` that ``before`` did not have (JSON lists)."""
    return sorted(set(json.loads(after)) - set(json.loads(before)))


def main(previous_conf, current_conf, database, workdir):
    python = sys.executable
    # The catalogue before the addon was ever installed (its dependencies are).
    catalogue = run(python, "-c", CATALOGUE, current_conf, database)
    install = ["-c", previous_conf, "-d", database, "-i", "cats_mail_sync", "--stop-after-init"]
    run(python, "-m", "odoo", *install, "--log-level=warn", "--without-demo=all")
    with Dovecot({RECRUITER: PASSWORD}) as dovecot:
        port = str(dovecot.ssl_port)
        setup = [previous_conf, database, dovecot.ca_file, port, RECRUITER, PASSWORD, CANDIDATE]
        print(run(python, "-c", BEFORE, *setup))
        dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<before-upgrade@x>"))
        dovecot.append(RECRUITER, "INBOX", mail(STRANGER, RECRUITER, "<stranger@x>"))
        before = run(python, "-c", SYNC, previous_conf, database)
        print(before)
        passed_over = dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<passed-over@x>"))
        run(python, "-c", PASS_OVER, previous_conf, database, str(passed_over))
        during = dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<during-upgrade@x>"))
        upgrade = ["-c", current_conf, "-d", database, "-u", "cats_mail_sync", "--stop-after-init"]
        run(python, "-m", "odoo", *upgrade, "--log-level=warn")
        after = run(python, "-c", AFTER, current_conf, database, PASSWORD, RECRUITER, STRANGER)
        print(after)
        uninstall = run(python, "-c", UNINSTALL, current_conf, database, PASSWORD)
        traces = run(python, "-c", TRACES, current_conf, database, PASSWORD, RECRUITER)
        left = left_behind(catalogue, run(python, "-c", CATALOGUE, current_conf, database))
        traces += f"catalogue left {left}\n"
        print(uninstall + traces)
        reinstall = ["-c", current_conf, "-d", database, "-i", "cats_mail_sync", "--stop-after-init"]
        run(python, "-m", "odoo", *reinstall, "--log-level=warn")
        reinstalled = run(python, "-c", REINSTALLED, current_conf, database)
        print(reinstalled)
        after += uninstall + traces + reinstalled
    # The text the previous release logged is checked with the rest (its cursors are not: they are
    # what "after" is compared with).
    after += "".join(line for line in before.splitlines(keepends=True) if line.startswith("recipients in"))
    # The cursors are put back to activation by the upgrade (mail passed over is read again), then
    # a run reads up to the newest mail again: the Inbox's, the one that came during the upgrade.
    cursors_before = ast.literal_eval(before.split("cursors ", 1)[1].splitlines()[0])
    cursors_after = [
        (role, uidvalidity, during if role == "inbox" else uid) for role, uidvalidity, uid in cursors_before
    ]
    expected = {
        f"cursors after a run {cursors_after}": "after a run, the cursors are back at the newest mail",
        "recipients in the text [True]": "before: a logged mail's text begins with its recipients",
        "recipients out of the text [(False, True)]": "its recipients moved out of its text, into its fields",
        "state active": "the mailbox stays active",
        "password kept in clear False": "the password is encrypted",
        "password reads back True": "the password still logs in",
        "password bound True": "the password is bound to the server and login it was saved for",
        "state after a run active": "the mailbox logs after the upgrade",
        "logged [('<before-upgrade@x>', 1), ('<during-upgrade@x>', 1), ('<passed-over@x>', 1)]": (
            "each mail once, none lost, the one passed over before the upgrade logged"
        ),
        "private hosts allowed localhost": "mailboxes on a private network keep working",
        "recruiter server active True": "before uninstalling: a password and an outgoing server saved",
        "secrets left []": "uninstalled: no password nor token left in any table or column",
        "columns left []": "uninstalled: none of the module's columns left",
        "recruiter servers left 0": "uninstalled: no recruiter's outgoing server left",
        "looked back 1": "a stranger made a candidate: the look-back logs their mail",
        "removals 1": "a logged mail removed by the recruiter",
        "catalogue left []": (
            "uninstalled: PostgreSQL's catalogue (relations, indexes, columns, functions, constraints, "
            "triggers) as before the install"
        ),
        "logged mail kept 1": "uninstalled: the logged mail stays on its record",
        "reinstalled not_configured  False": "installed again: it starts clean",
    }
    failed = [what for line, what in expected.items() if line not in after]
    for line, what in expected.items():
        print(f"{'ok  ' if line in after else 'FAIL'} {what}")
    print(f"{len(expected) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(*sys.argv[1:5])
