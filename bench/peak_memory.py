"""Benchmark: peak memory of one run over a mailbox of large mails, for a few numbers of mails.

``python3 bench/peak_memory.py ODOO_CONF DATABASE [MAILS ...] [--mb MB]`` (defaults: 5 and 50 mails of
25 MB). Use a scratch database with cats_mail_sync installed: the runs commit, like production.

For each number of mails, a fresh recruiter's Inbox on a real Dovecot (the tests' harness) gets that
many mails from a candidate, each a little under ``MB`` MB in all (one attachment); one run of the
sync then logs them in a process of its own, which reports its resident memory (``ru_maxrss``) just
before and at the end of the run. With the default size limit (cats_mail_sync.max_mail_mb, 25 MB),
mails of 25 MB are logged whole, attachment stored; larger ones with their text only. Peak memory
that does not grow with the number of mails is bounded memory.
"""

import argparse
import functools
import json
import resource
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tools import config

# The test servers (harness) ship with the addon's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
from harness.dovecot import Dovecot

PASSWORD = "bench-Secret"
CANDIDATE = "peak.candidate@example.com"
MB = 1024 * 1024
# base64 turns 57 bytes into a 76-character line and its line end.
BASE64_GROWTH = 78 / 57


def mail(recruiter, number, mb, token):
    """A mail of about ``mb`` MB (a little less) from the candidate, with one attachment."""
    message = EmailMessage()
    message["From"] = f"Peak Candidate <{CANDIDATE}>"
    message["To"] = recruiter
    message["Subject"] = f"Large mail {number}"
    message["Message-ID"] = f"<peak-{token}-{number}@example.com>"
    message.set_content("Please find my portfolio attached.\n")
    size = int((mb * MB - 64 * 1024) / BASE64_GROWTH)
    data = (number.to_bytes(4, "big") + uuid.uuid4().bytes) * (size // 20 + 1)
    message.add_attachment(
        data[:size], maintype="application", subtype="octet-stream", filename="portfolio.bin"
    )
    return message.as_bytes()


@functools.cache
def registry_of(conf, db):
    """The database's registry, Odoo configured once per process."""
    config.parse_config(["-c", conf, "-d", db, "--log-level", "warn"])
    return Registry(db)


def measure(conf, db, mails=50, mb=25):
    """Fill a new mailbox with ``mails`` mails of ``mb`` MB, sync it once in a process of its own;
    its figures: ``{"mails", "mb", "logged", "seconds", "before_mb", "peak_mb"}``."""
    registry = registry_of(conf, db)
    token = uuid.uuid4().hex[:8]
    recruiter = f"peak-{token}@recruit.example.test"
    with Dovecot({recruiter: PASSWORD}) as dovecot:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            params = env["ir.config_parameter"]
            params.set_param("cats_mail_sync.ca_file", dovecot.ca_file)
            params.set_param("cats_mail_sync.allow_private_hosts", "True")
            from odoo.addons.cats_mail_sync import series  # found once Odoo is configured

            if not env[series.PERSON].search_count([("email_from", "=", CANDIDATE)]):
                series.new_person(env, {"partner_name": "Peak Candidate", "email_from": CANDIDATE})
            user = env["res.users"].create({"name": f"Peak {token}", "login": recruiter, "email": recruiter})
            user.write(
                {
                    "mailbox_email": recruiter,
                    "mailbox_login": recruiter,
                    "mailbox_password": PASSWORD,
                    "mailbox_imap_host": dovecot.host,
                    "mailbox_imap_port": dovecot.ssl_port,
                }
            )
            user.action_mailbox_activate()
            user_id = user.id
        with dovecot.client(recruiter) as client:
            for number in range(mails):
                client.append("INBOX", mail(recruiter, number, mb, token))
        child = subprocess.run(
            [sys.executable, __file__, conf, db, "--sync-user", str(user_id)],
            check=True,
            capture_output=True,
            text=True,
        )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    return {"mails": mails, "mb": mb, **figures}


def sync_once(conf, db, user_id):
    """In the child: one run of the mailbox; print its figures as JSON."""
    registry = registry_of(conf, db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        user = env["res.users"].browse(user_id)
        user.mailbox_folder_ids.mapped("name")  # the environment is warm before the first figure
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        logged = env["cats_mail_sync.sync"]._sync(user)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux.
    print(
        json.dumps({"logged": logged, "seconds": seconds, "before_mb": before / 1024, "peak_mb": peak / 1024})
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conf", help="Odoo configuration file")
    parser.add_argument("db", help="scratch database with cats_mail_sync installed")
    parser.add_argument("mails", nargs="*", type=int, default=[5, 50], help="numbers of mails (5 50)")
    parser.add_argument("--mb", type=float, default=25, help="size of each mail in MB (25)")
    parser.add_argument("--sync-user", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sync_user:
        sync_once(args.conf, args.db, args.sync_user)
        return
    print("| mails | MB each | logged | run (s) | RSS before run (MB) | peak RSS (MB) | growth (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for mails in args.mails:
        f = measure(args.conf, args.db, mails, args.mb)
        print(
            f"| {f['mails']} | {f['mb']:g} | {f['logged']} | {f['seconds']:.1f} | {f['before_mb']:.0f} "
            f"| {f['peak_mb']:.0f} | {f['peak_mb'] - f['before_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
