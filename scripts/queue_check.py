"""One scheduled cycle with queue_job as the README sets it up, on a real Odoo server.

Run by scripts/test's queue stage with Odoo's Python: ``queue_check.py CONFIG DATABASE WORKDIR``,
CONFIG naming a database where cats_mail_sync_queue is installed. A Dovecot with a few mailboxes
(a mail from the candidate in each Inbox, the answer in Sent, a stranger's mail), their recruiters
activated; then an Odoo server with workers, queue_job loaded server-wide and its job runner
(the README's [queue_job] section), and the scheduled action triggered. Its cron worker queues a
job per mailbox; the job runner has them run by the HTTP workers, through /queue_job/runjob.
Then the stranger is made a candidate: that asks for a run at once, whose jobs look back in each
mailbox for the stranger's earlier mail. Prints what it checked and "N passed, N failed"; exits
non-zero on a failure.
"""

import signal
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import odoo
import odoo.api
import odoo.modules.registry
import odoo.tools
from odoo import SUPERUSER_ID, api

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
from harness.dovecot import Dovecot

MAILBOXES = 4
CANDIDATE = "carla.queue@example.com"
STRANGER = "sam.stranger@elsewhere.example.net"
# How long the cycle may take before the check gives up (it takes seconds).
PATIENCE = 180


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mail(sender, to, message_id):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, "Application"
    message["Message-ID"] = message_id
    message.set_content("Dear recruiter")
    return message


def set_up(env, dovecot):
    """The candidate, the recruiters with an active mailbox; the Message-IDs to be logged."""
    from odoo.addons.cats_mail_sync import series

    params = env["ir.config_parameter"]
    params.set_param("cats_mail_sync.ca_file", dovecot.ca_file)
    params.set_param("cats_mail_sync.allow_private_hosts", "True")
    candidate = series.new_person(env, {"partner_name": "Carla Queue", "email_from": CANDIDATE})
    expected = set()
    for number, address in enumerate(dovecot.users):
        user = (
            env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": f"Recruiter {number}",
                    "login": address,
                    "email": address,
                    **series.user_groups(
                        env.ref("base.group_user") | env.ref("hr_recruitment.group_hr_recruitment_user")
                    ),
                }
            )
        )
        user.write(
            {
                "mailbox_email": address,
                "mailbox_login": address,
                "mailbox_password": dovecot.users[address],
                "mailbox_imap_host": dovecot.host,
                "mailbox_imap_port": dovecot.ssl_port,
                "mailbox_imap_security": "ssl",
            }
        )
        env.cr.commit()
        user.action_mailbox_activate()
        env.cr.commit()
        for folder, sender, to, name in (
            ("INBOX", CANDIDATE, address, "cv"),
            ("Sent", address, CANDIDATE, "answer"),
            ("INBOX", STRANGER, address, "stray"),
        ):
            message_id = f"<{name}{number}.queue@x>"
            dovecot.append(address, folder, mail(sender, to, message_id))
            if name != "stray":
                expected.add(message_id)
    return candidate, expected


def server_config(config, workdir, http_port):
    """The test database's configuration, plus the README's settings for queue_job."""
    path = Path(workdir) / "queue-server.conf"
    text = Path(config).read_text()
    text += (
        f"http_interface = 127.0.0.1\nhttp_port = {http_port}\ngevent_port = {free_port()}\n"
        "workers = 2\nmax_cron_threads = 1\nserver_wide_modules = base,web,queue_job\n"
        "\n[queue_job]\nchannels = root:2,root.cats_mail_sync:2\n"
        f"scheme = http\nhost = 127.0.0.1\nport = {http_port}\n"
    )
    path.write_text(text)
    return path


def state(registry, candidate_id, user_ids):
    """What the cycles did so far: the jobs' states, the Message-IDs on the candidate, the runs."""
    from odoo.addons.cats_mail_sync import series

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        jobs = env["queue.job"].search([("model_name", "=", "cats_mail_sync.sync")])
        messages = env["mail.message"].search(
            [("model", "=", series.PERSON), ("res_id", "=", candidate_id), ("mailbox_user_id", "!=", False)]
        )
        runs = env["cats_mail_sync.run"].search([("user_id", "in", user_ids)])
        return (
            sorted(jobs.mapped("state")),
            sorted(messages.mapped("message_id")),
            [(run.logged, run.error or "") for run in runs],
        )


def wait_for(registry, candidate_id, user_ids, jobs_expected, deadline):
    """Until ``jobs_expected`` jobs have ended (or the deadline); then :func:`state`."""
    while time.monotonic() < deadline:
        jobs, _logged, _runs = state(registry, candidate_id, user_ids)
        if len(jobs) >= jobs_expected and set(jobs) <= {"done", "failed"}:
            break
        time.sleep(1)
    return state(registry, candidate_id, user_ids)


def main(config, database, workdir):
    passwords = {
        f"queue{number}@recruit.example.test": f"queue{number}-Secret" for number in range(MAILBOXES)
    }
    dovecot = Dovecot(passwords).start()
    server = None
    try:
        odoo.tools.config.parse_config(["-c", config, "-d", database, "--log-level=warn"])
        registry = odoo.modules.registry.Registry(database)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            candidate, expected = set_up(env, dovecot)
            candidate_id = candidate.id
            user_ids = env["res.users"].search([("login", "in", list(passwords))]).ids
        http_port = free_port()
        command = [sys.executable, "-m", "odoo", "-c", str(server_config(config, workdir, http_port))]
        with open(Path(workdir) / "queue-server.log", "w") as log:
            server = subprocess.Popen(
                [*command, "-d", database, "--log-level=info"], stdout=log, stderr=log, cwd=workdir
            )
        deadline = time.monotonic() + PATIENCE
        server_log = Path(workdir) / "queue-server.log"
        while "queue job runner ready" not in server_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        with registry.cursor() as cr:
            # The scheduled action, due now: the server's cron worker is told and runs it.
            api.Environment(cr, SUPERUSER_ID, {}).ref("cats_mail_sync.ir_cron_cats_mail_sync")._trigger()
        jobs, logged, runs = wait_for(registry, candidate_id, user_ids, MAILBOXES, deadline)
        # The stranger who wrote to every recruiter becomes a candidate: making it asks for a run
        # at once, whose jobs look back in each mailbox for the stranger's mail.
        from odoo.addons.cats_mail_sync import series

        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            stranger_id = series.new_person(env, {"partner_name": "Sam Stranger", "email_from": STRANGER}).id
        later = wait_for(registry, stranger_id, user_ids, 2 * MAILBOXES, time.monotonic() + PATIENCE)
        later_jobs, looked_back, _runs = later
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        dovecot.stop()
    checks = [
        (f"a job per mailbox ({MAILBOXES}), each done: {jobs}", jobs == ["done"] * MAILBOXES),
        (f"every mail logged on the candidate ({len(logged)} of {len(expected)})", set(logged) == expected),
        ("and no other mail", set(logged) <= expected),
        (
            f"a run in each mailbox's sync log, none with a problem: {runs}",
            len(runs) == MAILBOXES and not any(e for _, e in runs),
        ),
        (
            f"a stranger made a candidate: a job per mailbox again, each done: {later_jobs}",
            later_jobs == ["done"] * 2 * MAILBOXES,
        ),
        (
            f"the stranger's earlier mail looked back for and logged ({len(looked_back)} of {MAILBOXES})",
            looked_back == sorted(f"<stray{number}.queue@x>" for number in range(MAILBOXES)),
        ),
    ]
    for what, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    failed = [what for what, ok in checks if not ok]
    if failed:
        print("the last lines of the server's log:")
        print("".join((Path(workdir) / "queue-server.log").read_text().splitlines(True)[-40:]))
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
