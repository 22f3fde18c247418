"""The fault suite: the sync under network faults, dying workers, races and hostile mail, with real commits.

Run by scripts/reliability on a scratch database: ``reliability_run.py CONFIG DATABASE [LOGFILE]``.
A real Dovecot over TLS with two recruiters, reached through a FaultProxy (and, for what only a
server can say, a FakeImapServer); the sync runs as production runs it (the engine commits per
batch, the driver commits after each run). For each scenario: deliver matching mails (and some
that match nothing), inject the fault, run the sync, remove the fault, run the scheduled action
again, then count for every expected (Message-ID, record) pair how many times it is logged.
Prints a Markdown table and ``N passed, M failed``; exits 1 if any scenario failed.
"""

import datetime
import email
import hashlib
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from unittest.mock import patch

import odoo
import odoo.api
import odoo.modules.registry
import odoo.tools

# The test servers (harness) ship with the addon's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
from harness import corpus
from harness.dovecot import Dovecot
from harness.proxy import At, FakeImapServer, FaultProxy

ANNA, BERT = "anna@recruit.example.test", "bert@recruit.example.test"
PASSWORDS = {ANNA: "anna-Secret-42", BERT: "bert-Secret-43"}
CANDIDATE = "carla.candidate@example.com"
CONTACT = "chris@client.example.com"
STRANGER = "stranger@elsewhere.example.net"
READ_TIMEOUT = 3  # cats_mail_sync.read_timeout: black holes end quickly
BOUND = READ_TIMEOUT * 4 + 10  # longest acceptable fault run, in seconds
BIG_BOUND = 60  # the 25 MB mail
THREAD_TIMEOUT = 120
SOCKET_TIMEOUT = 60
LOCK_TIMEOUT = "SET lock_timeout = '100s'"  # a hung transaction cannot hang the suite
LISTED = 12  # corpus mails listed per outcome
CHILD_TIMEOUT = 120
TOKEN = uuid.uuid4().hex[:8]
AFTER = "the normal mail after them"

# Scenario 10: a worker that dies (SIGKILL) at its first cursor write, after the batch's mails were posted.
DYING_WORKER = r"""
import json, os, signal, sys
import odoo, odoo.api, odoo.modules.registry, odoo.tools

config, database, logfile, user_id, ids = sys.argv[1:6]
odoo.tools.config.parse_config(["-c", config, "-d", database, "--logfile", logfile, "--log-level", "warn"])
registry = odoo.modules.registry.Registry(database)
with registry.cursor() as cr:
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})

    def die(folder, values):
        cr.execute(
            "SELECT count(*) FROM mail_message WHERE mailbox_user_id IS NOT NULL AND message_id = ANY(%s)",
            [json.loads(ids)],
        )
        print("posted", cr.fetchone()[0], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    type(env["cats_mail_sync.folder"]).write = die
    cr.execute("SELECT pg_backend_pid()")
    print("backend", cr.fetchone()[0], flush=True)
    env["cats_mail_sync.sync"]._sync(env["res.users"].browse(int(user_id)))
print("survived", flush=True)
"""


@dataclass
class Mail:
    """A mail delivered by a scenario and the records it must be logged on (none: it matches nothing)."""

    message_id: str
    subject: str
    records: list
    name: str = ""
    expectation: str = ""
    alternatives: list = field(default_factory=list)  # ids it may be logged under, when _parse fails


@dataclass
class Row:
    name: str
    mails: int
    pairs: int
    logged: int
    skipped: list
    lost: int
    duplicated: int
    passed: bool
    notes: list = field(default_factory=list)


def mail_bytes(sender, to, subject, message_id, cc=(), attachment=0):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(datetime.datetime.now(datetime.timezone.utc))
    message.set_content("Hello,\n\nA mail of the fault suite.\n")
    if attachment:
        message.add_attachment(
            random.Random(message_id).randbytes(attachment),
            maintype="application",
            subtype="octet-stream",
            filename="cv.bin",
        )
    return message.as_bytes()


def short(text, size=90):
    text = " ".join(str(text or "").split())
    return text if len(text) <= size else text[: size - 1] + "…"


class Suite:
    def __init__(self, config, database, logfile):
        self.config, self.database, self.logfile = config, database, logfile
        self.registry = odoo.modules.registry.Registry(database)
        self.cr = self.registry.cursor()
        self.env = odoo.api.Environment(self.cr, odoo.SUPERUSER_ID, {})
        self.cr.execute(LOCK_TIMEOUT)
        from odoo.addons.cats_mail_sync.mailbox_client import reader

        self.reader_module = reader
        self.reader_class = reader.MailboxReader
        self.rows = []
        self.times = []  # (seconds, scenario) of every fault run
        self.serial = 0
        self.marks = {}

    # -- set-up ----------------------------------------------------------

    def set_up(self, dovecot, proxy):
        self.dovecot, self.proxy = dovecot, proxy
        env = self.env
        params = env["ir.config_parameter"].sudo()
        params.set_param("cats_mail_sync.ca_file", dovecot.ca_file)
        params.set_param("cats_mail_sync.allow_private_hosts", "True")
        params.set_param("cats_mail_sync.read_timeout", str(READ_TIMEOUT))
        from odoo.addons.cats_mail_sync import series

        self.candidate = series.new_person(env, {"partner_name": "Carla Candidate", "email_from": CANDIDATE})
        job = env["hr.job"].create({"name": "Welder"})
        self.application = series.new_application(self.candidate, {"job_id": job.id})
        self.contact = env["res.partner"].create({"name": "Chris Client", "email": CONTACT})
        groups = series.user_groups(
            env.ref("base.group_user") | env.ref("hr_recruitment.group_hr_recruitment_user")
        )
        self.users = {}
        for login, address in (("anna", ANNA), ("bert", BERT)):
            self.users[address] = env["res.users"].create(
                {"name": login.title(), "login": login, "email": address, **groups}
            )
        self.commit()
        for address, user in self.users.items():
            user.write(
                {
                    "mailbox_email": address,
                    "mailbox_login": address,
                    "mailbox_password": PASSWORDS[address],
                    "mailbox_imap_host": "localhost",
                    "mailbox_imap_port": proxy.port,
                    "mailbox_imap_security": "ssl",
                }
            )
            user.action_mailbox_activate()
        self.commit()
        if self.application.application_status != "ongoing":
            raise RuntimeError("the application is not ongoing: the expected records would be wrong")

    @property
    def from_candidate(self):
        return [(self.candidate._name, self.candidate.id), ("hr.applicant", self.application.id)]

    @property
    def to_contact(self):
        return [("res.partner", self.contact.id)]

    # -- database --------------------------------------------------------

    def commit(self):
        self.cr.commit()
        self.env.invalidate_all()

    def user(self, address):
        return self.users[address]

    def set_port(self, address, port):
        """The server moves, with no change to the settings (no settings-change logic runs);
        the password is saved for the new port (it goes only where it was saved for)."""
        user = self.user(address)
        self.cr.execute("UPDATE res_users SET mailbox_imap_port = %s WHERE id = %s", [port, user.id])
        user.invalidate_recordset(["mailbox_imap_port"])
        self.env["cats_mail_sync.credentials"]._save_password(user, PASSWORDS[address])
        self.commit()

    def state(self, address):
        user = self.user(address)
        error = f": {short(user.mailbox_error, 70)}" if user.mailbox_error else ""
        return f"mailbox {user.mailbox_state}{error}"

    # -- mail ------------------------------------------------------------

    def new_mail(self, scenario, sender, to, records, cc=(), attachment=0):
        self.serial += 1
        message_id = f"<s{scenario}-{self.serial}.{TOKEN}@reliability.example.test>"
        subject = f"Fault suite {scenario} #{self.serial} {TOKEN}"
        return Mail(message_id, subject, records), mail_bytes(sender, to, subject, message_id, cc, attachment)

    def append(self, login, raws, folder="INBOX", date=None):
        """APPEND ``raws`` in one session; their UIDs."""
        uids = []
        with self.dovecot.client(login) as client:
            for raw in raws:
                response = client.append(folder, raw, msg_time=date)
                uids.append(int(response.split(b"APPENDUID ")[1].split()[1].rstrip(b"]")))
        return uids

    def deliver(self, scenario, login=ANNA, inbox=2, sent=1, stray=1, attachment=60_000, date=None):
        """Mails from the candidate to ``login``'s Inbox, from ``login`` to the contact in Sent, and
        ``stray`` that match nothing. Returns (expected mails, stray mails)."""
        expected, strays, by_folder = [], [], {"INBOX": [], "Sent": []}
        for number in range(inbox):
            mail, raw = self.new_mail(
                scenario, CANDIDATE, login, self.from_candidate, attachment=attachment if not number else 0
            )
            expected.append(mail)
            by_folder["INBOX"].append(raw)
        for _number in range(sent):
            mail, raw = self.new_mail(scenario, login, CONTACT, self.to_contact)
            expected.append(mail)
            by_folder["Sent"].append(raw)
        for _number in range(stray):
            mail, raw = self.new_mail(scenario, STRANGER, login, [])
            strays.append(mail)
            by_folder["INBOX"].append(raw)
        for folder, raws in by_folder.items():
            if raws:
                self.append(login, raws, folder, date=date)
        return expected, strays

    # -- runs ------------------------------------------------------------

    def run(self, address, scenario=""):
        """One run of ``address``'s mailbox, as "Sync now" does; (result, seconds)."""
        started = time.monotonic()
        try:
            result = self.env["cats_mail_sync.sync"]._sync(self.user(address))
        finally:
            self.commit()
        seconds = time.monotonic() - started
        self.times.append((seconds, scenario))
        return result, seconds

    def follow_up(self, runs=2):
        """The next scheduled runs, once the fault is gone (retry times moved 10 minutes back)."""
        for _run in range(runs):
            self.cr.execute(
                "UPDATE res_users SET mailbox_retry_at = mailbox_retry_at - interval '10 minutes'"
                " WHERE mailbox_retry_at IS NOT NULL"
            )
            self.commit()
            self.env["cats_mail_sync.sync"]._cron()
            self.commit()

    def parallel(self, addresses):
        """``_sync`` of each mailbox in its own thread and transaction, started together on a barrier."""
        barrier = threading.Barrier(len(addresses), timeout=30)
        results, failures = [None] * len(addresses), []

        def work(index, user_id):
            try:
                with self.registry.cursor() as cr:
                    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
                    cr.execute(LOCK_TIMEOUT)
                    user = env["res.users"].browse(user_id)
                    user.mailbox_folder_ids.mapped("last_uid")  # read before the start
                    barrier.wait()
                    started = time.monotonic()
                    results[index] = (env["cats_mail_sync.sync"]._sync(user), time.monotonic() - started)
            except Exception as error:  # noqa: BLE001 - reported as the scenario's failure
                failures.append(f"{type(error).__name__}: {short(error)}")

        threads = [
            threading.Thread(target=work, args=(index, self.user(address).id), daemon=True)
            for index, address in enumerate(addresses)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + THREAD_TIMEOUT
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        if any(thread.is_alive() for thread in threads):
            failures.append(f"a run still going after {THREAD_TIMEOUT} s (hang)")
        self.commit()
        for result in results:
            if result:
                self.times.append((result[1], "parallel"))
        return results, failures

    # -- counting --------------------------------------------------------

    def pairs(self, mails):
        """``{(message_id, model, res_id): (times logged, any original.eml)}`` for ``mails``."""
        ids = sorted({mail.message_id for mail in mails if mail.message_id})
        self.cr.execute(
            """
            SELECT m.message_id, m.model, m.res_id, count(DISTINCT m.id),
                   coalesce(bool_or(a.name = 'original.eml'), false)
              FROM mail_message m
              LEFT JOIN message_attachment_rel r ON r.message_id = m.id
              LEFT JOIN ir_attachment a ON a.id = r.attachment_id
             WHERE m.mailbox_user_id IS NOT NULL AND m.message_id = ANY(%s)
             GROUP BY 1, 2, 3
            """,
            [ids],
        )
        return {
            (mid, model, res_id): (count, original)
            for mid, model, res_id, count, original in self.cr.fetchall()
        }

    def by_subject(self, mails):
        """Logged copies per (subject, model, res_id): a mail logged again under another Message-ID."""
        self.cr.execute(
            "SELECT subject, model, res_id, count(*) FROM mail_message"
            " WHERE mailbox_user_id IS NOT NULL AND subject = ANY(%s) GROUP BY 1, 2, 3",
            [[mail.subject for mail in mails]],
        )
        return {(subject, model, res_id): count for subject, model, res_id, count in self.cr.fetchall()}

    def skipped(self, mails):
        self.cr.execute(
            "SELECT message_id, reason FROM cats_mail_sync_skipped WHERE message_id = ANY(%s) ORDER BY id",
            [[mail.message_id for mail in mails if mail.message_id]],
        )
        return self.cr.fetchall()

    def row(self, name, expected, strays=(), *, seconds=None, bound=BOUND, checks=(), notes=()):
        """Count, judge and keep one scenario's row."""
        found, subjects = self.pairs([*expected, *strays]), self.by_subject(expected)
        pairs = logged = lost = duplicated = 0
        for mail in expected:
            for model, res_id in mail.records:
                pairs += 1
                count = found.get((mail.message_id, model, res_id), (0, False))[0]
                count = max(count, subjects.get((mail.subject, model, res_id), 0))
                logged += count >= 1
                lost += count == 0
                duplicated += count > 1
        notes = list(notes)
        stray_logged = sum(
            count for (mid, _m, _r), (count, _o) in found.items() if mid in {s.message_id for s in strays}
        )
        ok = not lost and not duplicated
        if stray_logged:
            ok = False
            notes.append(f"{stray_logged} mail(s) that match nothing were logged")
        if seconds is not None:
            notes.append(f"fault run {seconds:.1f} s")
            if seconds > bound:
                ok = False
                notes.append(f"longer than the bound of {bound} s")
        for passed, why in checks:
            if not passed:
                ok = False
                notes.append(why)
        skipped = [reason for _mid, reason in self.skipped([*expected, *strays])]
        self.rows.append(Row(name, len(expected), pairs, logged, skipped, lost, duplicated, ok, notes))
        return self.rows[-1]

    # -- scenarios -------------------------------------------------------

    def network_fault(self, number, name, inject, *, remove=None, learn=False, more_checks=None):
        """Deliver, inject, run, remove, run again, count."""
        expected, strays = self.deliver(number)
        shot = inject()
        result, seconds = self.run(ANNA, name)
        during = sum(count >= 1 for count, _o in self.pairs(expected).values())
        state = self.state(ANNA)
        fired = shot.wait(5) if shot is not None else True
        self.proxy.pass_through()
        if remove:
            remove()
        self.follow_up()
        checks = [(fired, "the fault was not injected (the trigger never fired)")]
        if more_checks:
            checks += more_checks(result, during, expected)
        notes = [f"returned {result}, {during} pair(s) logged during the fault run, then {state}"]
        return self.row(f"{number}. {name}", expected, strays, seconds=seconds, checks=checks, notes=notes)

    def learn(self):
        """A clean run through the proxy; proxy.mark() before each step names its client record."""
        marks = {}
        originals = {name: getattr(self.reader_class, name) for name in ("status", "headers", "messages")}

        def spy(name):
            original = originals[name]

            def step(reader, *args, **kwargs):
                marks.setdefault(name, self.proxy.mark(name))
                return original(reader, *args, **kwargs)

            return step

        expected, strays = self.deliver(0)
        with patch.multiple(self.reader_class, **{name: spy(name) for name in originals}):
            result, seconds = self.run(ANNA, "learn")
        self.follow_up(1)
        self.marks = marks
        known = set(marks) == set(originals) and len({mark.connection for mark in marks.values()}) == 1
        notes = [f"returned {result}"]
        if known:
            notes.append(
                "client records: LOGIN {}, header FETCH {}, body FETCH {}".format(
                    marks["status"].client_record - 1,
                    marks["headers"].client_record,
                    marks["messages"].client_record,
                )
            )
        self.row(
            "0. none: a clean run through the proxy",
            expected,
            strays,
            seconds=seconds,
            checks=[(known, "the steps of a run could not be located in the proxy's records")],
            notes=notes,
        )

    def cuts(self):
        proxy = self.proxy
        self.network_fault(
            1, "connection cut during the TLS handshake", lambda: proxy.cut_at(At.server_bytes(1))
        )
        login = self.marks["status"].client_record - 1
        self.network_fault(2, "cut during login", lambda: proxy.cut_at(At.client_record(login)))
        headers = self.marks["headers"].client_record
        self.network_fault(3, "cut during the header FETCH", lambda: proxy.cut_at(At.client_record(headers)))
        body = self.marks["messages"].client_record
        self.network_fault(
            4, "cut during the body FETCH (its command)", lambda: proxy.cut_at(At.client_record(body))
        )
        # A cut 30 KB into the answer (the first mail carries 60 KB): armed on the run's own connection.
        shots, original = [], self.reader_class.messages

        def cut_inside(reader, uids):
            if not shots:
                mark = proxy.mark("body")
                shots.append(proxy.cut_at(At.server_bytes(mark.server_bytes + 30_000), on=mark.connection))
            return original(reader, uids)

        with patch.object(self.reader_class, "messages", cut_inside):
            self.network_fault(
                "4b",
                "cut 30 KB into the body FETCH's answer",
                lambda: None,
                more_checks=lambda *a: [
                    (bool(shots) and shots[0].wait(5), "the cut inside the answer never fired")
                ],
            )
        # The Inbox's mails in two groups of whole mails (the first, 60 KB attached, alone), the
        # connection cut between them: the first group is committed with its cursor, the rest waits.
        calls = []

        def cut_between_groups(reader, uids):
            calls.append(uids)
            if len(calls) == 2:
                proxy.cut_all()
            return original(reader, uids)

        def first_group_logged(result, during, expected):
            return [
                (len(calls) >= 2, "the mails never came in two groups"),
                (during >= 1, "nothing was logged before the cut"),
            ]

        with (
            patch.object(self.reader_module, "GROUP_BYTES", 50_000),
            patch.object(self.reader_class, "messages", cut_between_groups),
        ):
            self.network_fault(
                "4c", "cut between two groups of whole mails", lambda: None, more_checks=first_group_logged
            )

    def silence(self):
        proxy = self.proxy
        headers = self.marks["headers"].client_record
        self.network_fault(
            5,
            "black hole from the header FETCH on",
            lambda: proxy.arm(At.client_record(headers), "blackhole"),
        )

        def black_hole_everything():
            proxy.blackhole()
            return proxy.arm(At.accept(), "blackhole")  # says a connection came in

        self.network_fault("5b", "black hole from the first byte (TLS handshake)", black_hole_everything)

        def completes(result, during, expected):
            pairs = sum(len(mail.records) for mail in expected)
            return [(during == pairs, f"the trickled run logged {during} of {pairs} pairs itself")]

        self.network_fault(
            6,
            "slow trickle (512 B per 20 ms)",
            lambda: proxy.trickle(nbytes=512, interval=0.02),
            more_checks=completes,
        )
        self.network_fault(
            7, "connections refused", lambda: proxy.refuse(True), remove=lambda: proxy.refuse(False)
        )

    def fake_server(self, number, name, script, commands_expected):
        expected, strays = self.deliver(number)
        folders, uidvalidity = {}, None
        with self.dovecot.client(ANNA) as client:
            for folder in ("INBOX", "Sent"):
                uidvalidity = uidvalidity or client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
                client.select_folder(folder, readonly=True)
                uids = sorted(client.search(["ALL"]))
                data = client.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
                folders[folder] = [data[uid][b"BODY[]"] for uid in uids]
        with FakeImapServer(script=script, messages=folders, uidvalidity=int(uidvalidity)) as fake:
            self.set_port(ANNA, fake.port)
            try:
                result, seconds = self.run(ANNA, name)
            finally:
                self.set_port(ANNA, self.proxy.port)
            commands = list(fake.commands)
        state = self.state(ANNA)
        self.follow_up()
        reached = commands_expected in commands
        return self.row(
            f"{number}. {name}",
            expected,
            strays,
            seconds=seconds,
            checks=[(reached, f"the fake server never got {commands_expected}: {commands}")],
            notes=[f"returned {result}, then {state}"],
        )

    def dying_worker(self):
        expected, strays = self.deliver(10, inbox=3)
        user = self.user(ANNA)
        ids = json.dumps([mail.message_id for mail in expected])
        try:
            child = subprocess.run(
                [sys.executable, "-", self.config, self.database, self.logfile, str(user.id), ids],
                input=DYING_WORKER,
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT,
                check=False,
            )
            output, code = child.stdout, child.returncode
        except subprocess.TimeoutExpired as error:
            output, code = str(error.stdout or ""), "timeout"
        lines = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
        posted = int(lines.get("posted", 0))
        backend = lines.get("backend")
        gone = self.wait_backend_gone(backend)
        during = sum(count for count, _o in self.pairs(expected).values())
        self.follow_up()
        return self.row(
            "10. the worker dies (SIGKILL) between logging and moving the cursor",
            expected,
            strays,
            checks=[
                (code == -signal.SIGKILL, f"the worker was not killed (exit {code}): {short(output)}"),
                (posted > 0, "no mail was posted before the kill"),
                (gone, "the killed worker's database session did not end within 10 s"),
                (during == 0, f"{during} pair(s) survived the killed transaction"),
            ],
            notes=[f"{posted} post(s) in the killed transaction, none committed" if not during else ""],
        )

    def wait_backend_gone(self, backend, timeout=10):
        if not backend:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cr.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [int(backend)])
            alive = self.cr.fetchone()[0]
            self.commit()
            if not alive:
                return True
            time.sleep(0.05)
        return False

    def same_mailbox_twice(self):
        expected, strays = self.deliver(11, inbox=20, sent=2)
        results, failures = self.parallel([ANNA, ANNA])
        outcomes = [result[0] if result else "no result" for result in results]
        self.follow_up()
        return self.row(
            "11. two runs of one mailbox at the same moment",
            expected,
            strays,
            checks=[
                (not failures, "; ".join(failures)),
                (sorted(outcomes, key=str).count(None) == 1, f"not one run kept off by the lock: {outcomes}"),
            ],
            notes=[f"returned {outcomes}"],
        )

    def same_mail_two_mailboxes(self, number, reverse=False):
        expected, raws = [], []
        for _index in range(6):
            mail, raw = self.new_mail(number, CANDIDATE, ANNA, self.from_candidate, cc=[BERT])
            expected.append(mail)
            raws.append(raw)
        self.append(ANNA, raws)
        self.append(BERT, raws[::-1] if reverse else raws)
        results, failures = self.parallel([ANNA, BERT])
        outcomes = [result[0] if result else "no result" for result in results]
        self.follow_up()
        order = "in the opposite order in Bert's Inbox" if reverse else "in the same order"
        return self.row(
            f"{number}. the same 6 mails in both recruiters' Inboxes ({order}), synced in parallel",
            expected,
            checks=[(not failures, "; ".join(failures))],
            notes=[f"logged by Anna's run / Bert's run: {outcomes}"],
        )

    def write_conflict(self):
        """The recruiter saves the profile while a scheduled run reads the mailbox: the run's
        write of the mailbox's state conflicts; the run after it, for Bert, goes on."""
        expected, strays = self.deliver(17)
        bert_expected, bert_strays = self.deliver(17, login=BERT, sent=0)
        anna = self.user(ANNA).id
        with self.registry.cursor() as profile:
            # The profile is saved (the row locked) before the run writes the mailbox's state.
            profile.execute("UPDATE res_users SET mailbox_excluded = 'family.example' WHERE id = %s", [anna])
            results, failures = [], []

            def cron():
                try:
                    with self.registry.cursor() as cr:
                        cr.execute(LOCK_TIMEOUT)
                        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
                        env["cats_mail_sync.sync"]._cron()
                        results.append("done")
                except Exception as error:  # noqa: BLE001 - reported as the scenario's failure
                    failures.append(f"{type(error).__name__}: {short(error)}")

            thread = threading.Thread(target=cron, daemon=True)
            thread.start()
            time.sleep(2)  # the run has logged Anna's mail and waits for the row
            profile.commit()
            thread.join(THREAD_TIMEOUT)
        self.commit()
        cron_state = self.state(ANNA)
        self.follow_up()
        self.cr.execute(
            "SELECT error FROM cats_mail_sync_run WHERE user_id = %s ORDER BY id DESC LIMIT 3", [anna]
        )
        recorded = " | ".join(error for (error,) in self.cr.fetchall() if error)
        return self.row(
            "17. the recruiter saves the profile while a run writes the mailbox's state",
            expected + bert_expected,
            strays + bert_strays,
            checks=[
                (not failures and results == ["done"], "; ".join(failures) or "the run did not end"),
                (not thread.is_alive(), f"the run still going after {THREAD_TIMEOUT} s"),
            ],
            notes=[f"after the conflict: {cron_state}; recorded: {short(recorded, 80) or 'nothing'}"],
        )

    def uidvalidity_reset(self):
        old, strays = self.deliver(13, sent=0)
        self.run(ANNA, "13 before")
        waiting, more_strays = self.deliver(13, sent=0, stray=0, attachment=0)  # arrives, not yet read
        before = self.inbox_uidvalidity()
        maildir = self.dovecot.mailbox_path(ANNA)
        for path in maildir.iterdir():
            if path.is_file() and (path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index")):
                path.unlink()
        new, newer_strays = self.deliver(13, sent=0, attachment=0)
        after = self.inbox_uidvalidity()
        result, seconds = self.run(ANNA, "13")
        state = self.state(ANNA)
        self.follow_up()
        return self.row(
            "13. UIDVALIDITY reset (Inbox renumbered) with old, unread and new mail",
            old + waiting + new,
            strays + more_strays + newer_strays,
            seconds=seconds,
            checks=[(before != after, f"Dovecot kept UIDVALIDITY {before}: no reset")],
            notes=[f"UIDVALIDITY {before} -> {after}; returned {result}, then {state}"],
        )

    def deleted_before_the_body(self):
        """The recruiter deletes a mail between the header FETCH and the body FETCH."""
        expected, strays = self.deliver(18, inbox=3, sent=0)
        doomed, expected = expected[0], expected[1:]
        headers = self.reader_class.headers

        def delete_after_headers(reader, uids):
            found = headers(reader, uids)
            with self.dovecot.client(ANNA) as client:
                client.select_folder("INBOX")
                client.delete_messages(client.search(["HEADER", "Message-ID", doomed.message_id]))
                client.expunge()
            return found

        with patch.object(self.reader_class, "headers", delete_after_headers):
            result, seconds = self.run(ANNA, "18")
        state = self.state(ANNA)
        self.follow_up()
        reasons = [reason for _mid, reason in self.skipped([doomed])]
        return self.row(
            "18. a mail deleted between the header and the body FETCH",
            expected,
            strays,
            seconds=seconds,
            checks=[(any("deleted" in reason for reason in reasons), f"not in the sync log: {reasons}")],
            notes=[f"returned {result}, then {state}; the deleted mail is in the sync log: {reasons}"],
        )

    def inbox_uidvalidity(self):
        with self.dovecot.client(ANNA) as client:
            return client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]

    def old_date(self):
        long_ago = datetime.datetime(2020, 1, 1, 9, 0, tzinfo=datetime.timezone.utc)
        expected, strays = self.deliver(14, attachment=0, date=long_ago)
        result, seconds = self.run(ANNA, "14")
        self.follow_up()
        return self.row(
            "14. mail moved into Inbox and Sent with a 2020 internal date",
            expected,
            strays,
            seconds=seconds,
            notes=[f"returned {result}"],
        )

    # -- hostile mail ----------------------------------------------------

    def hostile(self, number, name, address, cases, *, bound=BOUND):
        """Put ``cases`` and then a normal mail in ``address``'s Inbox; run; judge each mail."""
        uids = self.append(address, [raw for _name, raw, _expectation in cases])
        after, after_raw = self.new_mail(number, CANDIDATE, address, self.from_candidate)
        self.append(address, [after_raw])
        stored = self.fetch(address, uids)
        stumbling = self.header_crashes(address, uids, [case for case, _raw, _e in cases])
        notes = [f"MailboxReader.headers raises alone on: {', '.join(stumbling)}"] if stumbling else []
        logger = self.env["cats_mail_sync.logger"]
        mails = []
        for (case, _raw, expectation), uid in zip(cases, uids, strict=True):
            mail = Mail(None, "", self.from_candidate, case, expectation)
            try:
                with self.cr.savepoint():
                    mail.message_id = logger._parse(stored[uid])["message_id"]
            except Exception as error:  # noqa: BLE001 - the engine would stumble on it too
                notes.append(f"{case}: the logger's _parse raises {type(error).__name__}: {short(error, 60)}")
                stumbling.append(case)
                header = email.message_from_bytes(stored[uid], policy=policy.compat32).get("Message-ID")
                mail.alternatives = [
                    str(header or "").strip(),
                    f"<{hashlib.sha256(stored[uid]).hexdigest()[:40]}@cats-mail-sync>",
                ]
            mails.append(mail)
        result, seconds = self.run(address, name)
        state = self.state(address)
        self.follow_up()
        self.cr.execute(
            "SELECT error FROM cats_mail_sync_run WHERE user_id = %s AND error IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            [self.user(address).id],
        )
        last_error = (self.cr.fetchone() or [""])[0]
        outcome = self.judge(mails, [after], address)
        row = outcome["row"]
        row.name = f"{number}. {name}"
        row.notes += [f"fault run {seconds:.1f} s, returned {result}, then {state}", *notes]
        if seconds > bound:
            row.passed = False
            row.notes.append(f"longer than the bound of {bound} s")
        if outcome["tally"]["lost"][-1:] == [AFTER]:
            row.notes.append("the normal mail after the corpus is blocked")
        if last_error and (row.lost or not row.passed):
            row.notes.append(f"last run's problem: {short(last_error, 160)}")
        self.rows.append(row)
        return outcome, stumbling

    def fetch(self, address, uids):
        with self.dovecot.client(address) as client:
            client.select_folder("INBOX", readonly=True)
            return {uid: data[b"BODY[]"] for uid, data in client.fetch(uids, [b"BODY.PEEK[]"]).items()}

    def header_crashes(self, address, uids, names):
        """Names of the mails whose header fetch alone makes the reader raise (direct to Dovecot, no Odoo)."""
        crashing = []
        with self.dovecot.client(address) as client:
            reader = self.reader_class(client)
            reader.open("INBOX")
            for uid, name in zip(uids, names, strict=True):
                try:
                    reader.headers([uid])
                except Exception:  # noqa: BLE001 - which ones, is the point
                    crashing.append(name)
        return crashing

    def judge(self, mails, normal, address):
        """Per corpus mail: logged, as original.eml, skipped (reason), not matched as expected, lost."""
        found = self.pairs(
            mails + normal + [Mail(alt, "", []) for mail in mails for alt in mail.alternatives if alt]
        )
        for mail in mails:
            for alternative in mail.alternatives:
                if any(key[0] == alternative for key in found):
                    mail.message_id = alternative
        user_id = self.user(address).id
        self.cr.execute(
            "SELECT message_id, reason FROM cats_mail_sync_skipped WHERE user_id = %s ORDER BY id", [user_id]
        )
        reasons = dict(self.cr.fetchall())
        tally = {"logged": [], "original.eml": [], "skipped": [], "not matched": [], "lost": []}
        pairs = logged = lost = duplicated = 0
        for mail in mails + normal:
            counts = [
                found.get((mail.message_id, model, res_id), (0, False)) for model, res_id in mail.records
            ]
            logged += sum(count >= 1 for count, _o in counts)
            duplicated += sum(count > 1 for count, _o in counts)
            matched = not (mail.expectation.startswith("skipped") and not any(c for c, _o in counts))
            pairs += len(counts) if matched else 0  # a mail the corpus expects to match nothing: none
            if all(count >= 1 for count, _o in counts):
                kind = "original.eml" if any(original for _c, original in counts) else "logged"
                tally[kind].append(mail.name or AFTER)
            elif mail.message_id in reasons:
                tally["skipped"].append(f"{mail.name}: {short(reasons[mail.message_id], 120)}")
            elif not matched:
                tally["not matched"].append(f"{mail.name} ({short(mail.expectation, 70)})")
            else:
                lost += sum(count == 0 for count, _o in counts)
                tally["lost"].append(f"{mail.name} ({short(mail.expectation, 60)})" if mail.name else AFTER)
        row = Row(
            "",
            len(mails + normal),
            pairs,
            logged,
            [line.split(": ", 1)[-1] for line in tally["skipped"]],
            lost,
            duplicated,
            not lost and not duplicated,
        )
        return {"row": row, "tally": tally}

    # -- report ----------------------------------------------------------

    def table(self):
        lines = [
            "| fault or input | mails | logged | skipped (reason) | lost | duplicated |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            reasons = {}
            for reason in row.skipped:
                reasons[short(reason, 50)] = reasons.get(short(reason, 50), 0) + 1
            skipped = "; ".join(f"{n} x {r}" for r, n in reasons.items()) if reasons else "0"
            verdict = "" if row.passed else " **FAILED**"
            lines.append(
                f"| {row.name}{verdict} | {row.mails} ({row.pairs} pairs) | {row.logged} | {skipped} "
                f"| {row.lost} | {row.duplicated} |"
            )
        return "\n".join(lines)


def scenario(suite, function, *args, **kwargs):
    """Run one scenario; a crash of the driver itself is that scenario's failure."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - the next scenarios still run
        suite.cr.rollback()
        suite.env.invalidate_all()
        suite.proxy.pass_through()
        traceback.print_exc()
        suite.rows.append(
            Row(
                f"{function.__name__}{args}",
                0,
                0,
                0,
                [],
                0,
                0,
                False,
                [f"the scenario crashed: {type(error).__name__}: {short(error)}"],
            )
        )
        return None


def print_corpus(outcome, label):
    tally = outcome["tally"]
    print(
        f"\n{label}: {sum(len(v) for v in tally.values())} mails: "
        f"{len(tally['logged'])} logged, {len(tally['original.eml'])} logged as original.eml, "
        f"{len(tally['skipped'])} skipped with a reason, {len(tally['not matched'])} not matched "
        f"(as the corpus expects), {len(tally['lost'])} lost"
    )
    for kind in ("skipped", "not matched", "lost", "original.eml"):
        for line in tally[kind][:LISTED]:
            print(f"  - {kind}: {line}")
        if len(tally[kind]) > LISTED:
            print(f"  - ... and {len(tally[kind]) - LISTED} more {kind}")


def main(config, database, logfile="reliability.log"):
    started = time.monotonic()
    socket.setdefaulttimeout(SOCKET_TIMEOUT)  # the harness's own IMAP clients (APPEND, FETCH) too
    odoo.tools.config.parse_config(
        ["-c", config, "-d", database, "--logfile", logfile, "--log-level", "warn"]
    )
    suite = Suite(config, database, logfile)
    corpora = []
    with Dovecot(PASSWORDS) as dovecot, FaultProxy(("127.0.0.1", dovecot.ssl_port)) as proxy:
        try:
            suite.set_up(dovecot, proxy)
            run_scenarios(suite, corpora)
        finally:
            proxy.pass_through()
            suite.cr.rollback()
            suite.cr.close()
    print(f"# cats_mail_sync fault suite: database {database}, read timeout {READ_TIMEOUT} s\n")
    print(suite.table())
    print(
        "\nmails: matching mails delivered (expected (Message-ID, record) pairs); logged, lost and "
        "duplicated count pairs after the fault run and two scheduled runs without the fault; "
        "skipped: entries of the sync log."
    )
    print("\nNotes:")
    for row in suite.rows:
        notes = "; ".join(note for note in row.notes if note)
        print(f"- {row.name}: {'passed' if row.passed else 'FAILED'}{'; ' + notes if notes else ''}")
    for outcome, _crashing, label in corpora:
        print_corpus(outcome, label)
    seconds, name = max(suite.times, default=(0, ""))
    print(f"\nLongest run: {seconds:.1f} s ({name}); bound {BOUND} s ({BIG_BOUND} s for the 25 MB mail)")
    print(f"Odoo's log: {logfile}")
    print(f"Duration: {time.monotonic() - started:.0f} s")
    failed = sum(not row.passed for row in suite.rows)
    print(f"{len(suite.rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def run_scenarios(suite, corpora):
    scenario(suite, suite.learn)
    if suite.marks:
        scenario(suite, suite.cuts)
        scenario(suite, suite.silence)
    scenario(
        suite,
        suite.fake_server,
        8,
        "[UNAVAILABLE] at login (fake server)",
        {"LOGIN": "NO [UNAVAILABLE] Maintenance, try again later"},
        "LOGIN",
    )
    scenario(
        suite,
        suite.fake_server,
        9,
        "BYE mid-session, at the header FETCH (fake server)",
        {"FETCH": "* BYE Server shutting down"},
        "UID FETCH",
    )
    scenario(suite, suite.dying_worker)
    scenario(suite, suite.same_mailbox_twice)
    scenario(suite, suite.same_mail_two_mailboxes, 12)
    scenario(suite, suite.same_mail_two_mailboxes, "12b", True)
    scenario(suite, suite.uidvalidity_reset)
    scenario(suite, suite.old_date)
    scenario(suite, suite.write_conflict)
    scenario(suite, suite.deleted_before_the_body)
    cases = corpus.hostile_corpus(CANDIDATE, ANNA)
    found = scenario(
        suite, suite.hostile, 15, f"hostile corpus ({len(cases)} mails), then a normal mail", ANNA, cases
    )
    stumbling = found[1] if found else []
    if found:
        corpora.append((*found, "Corpus (15)"))
    big = [("attachment_25mb", corpus.big_mail(CANDIDATE, BERT), corpus.BIG_EXPECTATION)]
    name = "a 25 MB attachment (34 MB mail), then a normal mail"
    scenario(suite, suite.hostile, 16, name, BERT, big, bound=BIG_BOUND)
    if stumbling:
        # The corpus again, in Bert's Inbox, less the mails the engine stumbles on: what the rest gives.
        kept = [case for case in corpus.hostile_corpus(CANDIDATE, BERT) if case[0] not in stumbling]
        name = f"hostile corpus less {', '.join(stumbling)} ({len(kept)} mails), then a normal mail"
        found = scenario(suite, suite.hostile, "15b", name, BERT, kept)
        if found:
            corpora.append((*found, "Corpus less the mails the engine stumbles on (15b)"))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
