"""Upgrade test, run by scripts/upgrade: ``upgrade_check.py PREVIOUS_CONF CURRENT_CONF DATABASE WORKDIR
[ODOO_ARG...]`` (ODOO_ARGs go to the install: the series' "without demo data", if any).

One Dovecot stays up while the Odoo processes run in turn: the previous release activates a
mailbox and logs a mail; ``odoo -u cats_mail_sync`` upgrades to this checkout; this checkout
checks the mailbox and logs the mail that came meanwhile. Then, on the same scratch database,
this checkout is uninstalled (no secret may be left in any table or column) and installed again
(it starts clean).

Within a series (Odoo 19, which has no earlier release): PREVIOUS_CONF is CURRENT_CONF. This
checkout is installed and set up with all it keeps (an active mailbox, a mail logged, a
look-back, a removal, an outgoing server) before ``-u`` upgrades it to the same version; the
same checks follow, but for those about release 18.0.1.0.0 (RELEASE below).
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

# Each script below runs in a Python of its own (see script()), with the Odoo of one configuration.

# PostgreSQL's catalogue of the database's schema, one line per object: relations (tables,
# indexes, sequences, views), columns, functions, constraints and triggers.
CATALOGUE = """
import json
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

# Run in the previous configuration's Odoo: a recruiter with an active mailbox.
BEFORE = """
args = sys.argv[1:]
odoo.tools.config.parse_config(["-c", args[0], "-d", args[1]])
with odoo.modules.registry.Registry(args[1]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    env["ir.config_parameter"].set_param("cats_mail_sync.ca_file", args[2])
    recruiter, password, candidate = args[4:7]
    try:  # this checkout: its series says who the person is (a candidate on 18, an applicant on 19)
        from odoo.addons.cats_mail_sync import series
    except ImportError:  # release 18.0.1.0.0 (Odoo 18), which reads a server on any network
        env["hr.candidate"].create({"partner_name": "Carla", "email_from": candidate})
    else:  # a server on a private network is refused unless allowed
        env["ir.config_parameter"].set_param("cats_mail_sync.allow_private_hosts", "localhost")
        series.new_person(env, {"partner_name": "Carla", "email_from": candidate})
    user = env["res.users"].create({"name": "Una", "login": "una", "email": recruiter})
    user.write({
        "mailbox_email": recruiter, "mailbox_login": recruiter, "mailbox_password": password,
        "mailbox_imap_host": "localhost", "mailbox_imap_port": int(args[3]),
    })
    user.action_mailbox_activate()
    cr.commit()
    print("activated", user.id)
"""

# Run in the previous configuration's Odoo: one scheduled run.
SYNC = """
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    if "cats_mail_sync.sync" in env:  # this checkout's scheduled action
        env["cats_mail_sync.sync"]._cron()
    else:  # the previous release's
        env["res.users"]._cron_sync_mailboxes()
    cr.commit()
    cr.execute("SELECT role, uidvalidity, last_uid FROM cats_mail_sync_folder ORDER BY role")
    print("cursors", cr.fetchall())
    cr.execute("SELECT body FROM mail_message WHERE message_id = '<before-upgrade@x>'")
    print("recipients in the text", [body.startswith("<p><b>To:</b> ") for (body,) in cr.fetchall()])
"""

# Run in the previous release's Odoo: a mail the cursor moved past without logging it (as the reader
# passed over every mail of a server that labels the header otherwise than Dovecot: Courier).
PASS_OVER = """
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    cr.execute("UPDATE cats_mail_sync_folder SET last_uid = %s WHERE role = 'inbox'", [int(sys.argv[3])])
"""

# Run in this checkout's Odoo, after the upgrade.
AFTER = """
args = sys.argv[1:]
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
    servers = [(user.mailbox_imap_host, user.mailbox_imap_port)]
    servers += [(user.mailbox_smtp_host, user.mailbox_smtp_port)] if user.mailbox_smtp_host else []
    places = sorted((host, port, user.mailbox_login) for host, port in servers)
    print("password bound", sorted(bound) == places)
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
    logged = sorted(cr.fetchall())
    print("logged", logged)
    print("passed over logged", dict(logged).get("<passed-over@x>", 0))
    print("private hosts allowed", env["ir.config_parameter"].get_param("cats_mail_sync.allow_private_hosts"))
"""

# Run in this checkout's Odoo: a stranger who wrote before becomes a person (a candidate on 18, an
# applicant on 19): the look-back logs the mail; the recruiter removes it from the record (recorded,
# never logged there again).
LOOK_BACK = """
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    from odoo.addons.cats_mail_sync import series
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env["res.users"].search([("login", "=", "una")])
    series.new_person(env, {"partner_name": "Stan", "email_from": sys.argv[3]})
    cr.commit()
    env["cats_mail_sync.sync"]._cron()
    cr.commit()
    looked_back = env["mail.message"].search([("message_id", "=", "<stranger@x>")])
    print("looked back", len(looked_back))
    env["cats_mail_sync.removal"].with_user(user)._remove(looked_back.with_user(user))
    cr.commit()
"""

# Run in this checkout's Odoo: the recruiter saves an SMTP server too (an outgoing server is made
# for the proven address).
SAVE_SERVER = """
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env["res.users"].search([("login", "=", "una")])
    user.write({"mailbox_smtp_host": "localhost", "mailbox_smtp_port": 465, "mailbox_password": sys.argv[3]})
    user.write({"mailbox_email_confirmed": True})
    env["ir.mail_server"]._cats_mail_sync_update(user)
    cr.commit()
"""

# Run in this checkout's Odoo: what the recruiter saved, then the module is uninstalled, as an
# administrator does in Apps.
UNINSTALL = """
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env["res.users"].search([("login", "=", "una")])
    print("recruiter server", user.mailbox_state, user.mailbox_mail_server_id.active)
    print("removals", env["cats_mail_sync.removal"].search_count([]))
    cr.commit()
    env["ir.module.module"].search([("name", "=", "cats_mail_sync")]).button_immediate_uninstall()
"""

# Run after the uninstall, with Odoo's configuration only (the module is gone): every text
# column of every table is searched for the password, its base64 forms and any token the
# key decrypts; the module's tables and columns are listed.
TRACES = """
import base64, re
from pathlib import Path
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
odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2]])
with odoo.modules.registry.Registry(sys.argv[2]).cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env["res.users"].search([("login", "=", "una")])
    saved = env["cats_mail_sync.secret"]._has(user, "cats_mailbox_password")
    print("reinstalled", user.mailbox_state, user.mailbox_imap_host or "", saved)
"""

# What the check finds in what the scripts print, as (line, what it shows, RELEASE or ""): RELEASE
# marks what concerns release 18.0.1.0.0 only (the recipients it wrote into a mail's text, the mail
# its reader passed over), which a check within a series leaves out.
RELEASE = "release"


def expectations(cursors_after, logged):
    return [
        (f"cursors after a run {cursors_after}", "after a run, the cursors are back at the newest mail", ""),
        ("recipients in the text [True]", "before: a logged mail's text begins with its recipients", RELEASE),
        (
            "recipients out of the text [(False, True)]",
            "its recipients moved out of its text, into its fields",
            RELEASE,
        ),
        ("state active", "the mailbox stays active", ""),
        ("password kept in clear False", "the password is encrypted", ""),
        ("password reads back True", "the password still logs in", ""),
        ("password bound True", "the password is bound to the servers and login it was saved for", ""),
        ("state after a run active", "the mailbox logs after the upgrade", ""),
        (f"logged {logged}", "each mail once, none lost", ""),
        ("passed over logged 1", "the mail passed over before the upgrade logged", RELEASE),
        ("private hosts allowed localhost", "mailboxes on a private network keep working", ""),
        ("recruiter server active True", "before uninstalling: a password and an outgoing server saved", ""),
        ("secrets left []", "uninstalled: no password nor token left in any table or column", ""),
        ("columns left []", "uninstalled: none of the module's columns left", ""),
        ("recruiter servers left 0", "uninstalled: no recruiter's outgoing server left", ""),
        (
            "looked back 1",
            "a stranger made a candidate (an applicant on 19): the look-back logs the mail",
            "",
        ),
        ("removals 1", "a logged mail removed by the recruiter", ""),
        (
            "catalogue left []",
            "uninstalled: PostgreSQL's catalogue (relations, indexes, columns, functions, constraints, "
            "triggers) as before the install",
            "",
        ),
        ("logged mail kept 1", "uninstalled: the logged mail stays on its record", ""),
        ("reinstalled not_configured  False", "installed again: it starts clean", ""),
    ]


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


def script(python, source, *args):
    """Runs ``source``, one of the scripts above, with ``args``: with the parts of Odoo it uses
    imported by name (on Odoo 19, "import odoo" brings none of them)."""
    imports = "import sys, odoo, odoo.api, odoo.modules.registry, odoo.sql_db, odoo.tools\n"
    return run(python, "-c", imports + source, *args)


def left_behind(before, after):
    """The objects of catalogue ``after`` that ``before`` did not have (JSON lists)."""
    return sorted(set(json.loads(after)) - set(json.loads(before)))


def main(previous_conf, current_conf, database, workdir, *odoo_args):
    python = sys.executable
    # From release 18.0.1.0.0, or within the series: this checkout upgraded to itself.
    release = previous_conf != current_conf
    # The catalogue before the addon was ever installed (its dependencies are).
    catalogue = script(python, CATALOGUE, current_conf, database)
    install = ["-c", previous_conf, "-d", database, "-i", "cats_mail_sync", "--stop-after-init"]
    run(python, "-m", "odoo", *install, "--log-level=warn", *odoo_args)
    with Dovecot({RECRUITER: PASSWORD}) as dovecot:
        port = str(dovecot.ssl_port)
        setup = [previous_conf, database, dovecot.ca_file, port, RECRUITER, PASSWORD, CANDIDATE]
        print(script(python, BEFORE, *setup))
        dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<before-upgrade@x>"))
        dovecot.append(RECRUITER, "INBOX", mail(STRANGER, RECRUITER, "<stranger@x>"))
        before = script(python, SYNC, previous_conf, database)
        print(before)
        # What the upgrade must keep: from the release, a mail its reader passed over; within the
        # series, all this checkout keeps (a look-back, a removal, an outgoing server).
        kept = ""
        if release:
            passed_over = dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<passed-over@x>"))
            script(python, PASS_OVER, previous_conf, database, str(passed_over))
        else:
            kept = script(python, LOOK_BACK, current_conf, database, STRANGER)
            script(python, SAVE_SERVER, current_conf, database, PASSWORD)
            print(kept)
        during = dovecot.append(RECRUITER, "INBOX", mail(CANDIDATE, RECRUITER, "<during-upgrade@x>"))
        upgrade = ["-c", current_conf, "-d", database, "-u", "cats_mail_sync", "--stop-after-init"]
        run(python, "-m", "odoo", *upgrade, "--log-level=warn")
        after = script(python, AFTER, current_conf, database, PASSWORD, RECRUITER)
        if release:
            after += script(python, LOOK_BACK, current_conf, database, STRANGER)
            script(python, SAVE_SERVER, current_conf, database, PASSWORD)
        print(after)
        uninstall = script(python, UNINSTALL, current_conf, database)
        traces = script(python, TRACES, current_conf, database, PASSWORD, RECRUITER)
        left = left_behind(catalogue, script(python, CATALOGUE, current_conf, database))
        traces += f"catalogue left {left}\n"
        print(uninstall + traces)
        reinstall = ["-c", current_conf, "-d", database, "-i", "cats_mail_sync", "--stop-after-init"]
        run(python, "-m", "odoo", *reinstall, "--log-level=warn")
        reinstalled = script(python, REINSTALLED, current_conf, database)
        print(reinstalled)
        after += kept + uninstall + traces + reinstalled
    # The text the previous release logged is checked with the rest (its cursors are not: they are
    # what "after" is compared with).
    after += "".join(line for line in before.splitlines(keepends=True) if line.startswith("recipients in"))
    # From the release, the cursors are put back to activation by the upgrade (mail passed over is
    # read again); then a run reads up to the newest mail again: the Inbox's, the one that came
    # during the upgrade.
    cursors_before = ast.literal_eval(before.split("cursors ", 1)[1].splitlines()[0])
    cursors_after = [
        (role, uidvalidity, during if role == "inbox" else uid) for role, uidvalidity, uid in cursors_before
    ]
    # Each mail of the candidate once (the stranger's is not yet a person's, or was removed).
    logged = ["<before-upgrade@x>", "<during-upgrade@x>"] + (["<passed-over@x>"] if release else [])
    expected = [
        (line, what)
        for line, what, only in expectations(cursors_after, sorted((message, 1) for message in logged))
        if release or only != RELEASE
    ]
    failed = [what for line, what in expected if line not in after]
    for line, what in expected:
        print(f"{'ok  ' if line in after else 'FAIL'} {what}")
    print(f"{len(expected) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(*sys.argv[1:])
