"""New mail on the record within seconds, end to end: a mail's APPEND to the message on the record.

``python3 bench/listener_e2e.py CONFIG DATABASE [--mailboxes 1000] [--round-trip 0.05] [--mails N]
[--single 10]`` prints figures (no goal is checked here; issue 26's: median ≤ 5 s, p95 ≤ 30 s).
DATABASE is a scratch database with cats_mail_sync installed without demo data (bench/run's
``create_database``); the run adds its own recruiters and candidates there, and takes them out of
the sync (inactive) when it ends, so a database serves several runs.

Through the real processes, as a deployment has them:

- a Dovecot with ``--mailboxes`` mailboxes, set for many connections as bench/listener.py sets it,
  reached straight (``--round-trip 0``) or through bench/latency_proxy.py (sync and listener alike);
- as many recruiters with active mailboxes (folders known, as an activation leaves them:
  bench/data.py), and one candidate per mailbox, who sends that mailbox's mail;
- Odoo's server (``python -m odoo -c CONFIG -d DATABASE``, threaded, ``--max-cron-threads``) whose
  cron runs the sync, and the listener (``python -m odoo cats_mail_sync_listen``), which holds the
  mailboxes and announces new mail (``res_users.mailbox_new_mail_at``, the scheduled action
  triggered).

The scheduled action is left to its triggers: the run puts the state a scheduled run leaves behind
(every mailbox synchronized since the cycle began) and the next scheduled run a day away (its
interval set to a day, so that the cycle "began" a minute ago: a triggered run takes the
mailboxes announced, not every mailbox the cycle has not reached; ``--naive-schedule`` keeps the
10-minute interval and only moves the next call a day on, to show what a triggered run does then).

The run's time budget is the addon's own (three quarters of Odoo's limit_time_real, at most 90 s:
what is left goes to a run that starts at once) unless ``--run-seconds`` says otherwise; keep it
below limit_time_real (120 s by default): a run past it has the threaded server's watchdog reload
the server, and one started as ``python -m odoo`` then does not come back (the run fails saying so).
``--concurrency`` fixes how many mailboxes a run reads at once (cats_mail_sync.concurrency).

Cases, each with the machine's load (``uptime``) beside it:

- **single**: one mail into one mailbox, nothing else going on (what a recruiter sees on a quiet
  system), ``--single`` times, a different mailbox each time;
- **burst**: one mail into each of ``--mails`` mailboxes (default: all) at (nearly) the same time,
  from another process logged in beforehand (8 threads): latency from each APPEND being sent to
  its message being on the candidate (``mail_message``, polled every 0.2 s), median, 95th
  percentile, the slowest, when the last one came, and those missed within ``--timeout``.

For each case, where the time went: APPEND to announced (Dovecot and the listener:
``mailbox_new_mail_at``, polled before the sync clears it), announced to the start of the
scheduled action's run that synced the mailbox (``ir_cron_progress``), that start to the start of
the transaction that logged the mail (the message's ``create_date``: the mailbox's connection and
login are behind it, and the mailboxes the run took before it), and from there to the message seen;
the runs meanwhile (when each began, how many mailboxes it synced, how long it took: the server
log), the mailboxes synchronized in all (announced or not), the CPU of Odoo's server and of the
listener, and how many mailboxes the last runs read at once (the server log).

Measured (2 cores shared with other work: the load average is beside each figure; Debian 12's
Dovecot 2.3, TLS 1.3; APPEND to the message on the candidate; none missed, none logged twice):

=========================================  ==========================  ==============  ========
1,000 mailboxes                            median / p95 / max          runs            load
=========================================  ==========================  ==============  ========
Odoo 18, loopback, one mail (10 times)     0.82 s / 2.09 s / 2.09 s    1 each          5.1-5.6
Odoo 18, loopback, burst of 1,000          34 s / 58 s / 61 s          4 (4 at once)   6.4-7.1
Odoo 18, 50 ms, one mail (10 times)        1.42 s / 1.63 s / 1.63 s    1 each          5.7-7.4
Odoo 18, 50 ms, burst of 1,000             78 s / 127 s / 142 s        3 (4, then 11)  3.8-5.7
Odoo 18, 50 ms, burst, concurrency 16      59 s / 75 s / 78 s          3 (16)          10-14
Odoo 19, loopback, one mail (10 times)     0.82 s / 0.83 s / 0.83 s    1 each          9-13
Odoo 19, loopback, burst of 1,000          31 s / 50 s / 63 s          3 (4 at once)   8.8-10
=========================================  ==========================  ==============  ========

One mail: Dovecot tells an IDLE client half a second after the APPEND, the run starts 0.02 s after
the announcement, and the mailbox's sync takes the rest (0.1-0.2 s on loopback, 0.7-0.9 s at
50 ms: connection, TLS, login, both folders). A burst: runs of the one scheduled action follow each
other, each takes the mailboxes announced when it starts (the others wait for it to end), and reads
4 mailboxes at once unless its time budget needs more; a mailbox with a mail to log costs the
server's process 40-55 ms of CPU, some 45 s for 1,000 in one process.
"""

import argparse
import bisect
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import imapclient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cats_mail_sync" / "tests"))
import data  # noqa: E402  (before listener's path entries: cats_mail_sync/data is no module)
import listener as listener_bench  # noqa: E402  (bench/listener.py: Dovecot set for many connections)
from latency_proxy import LatencyProxy  # noqa: E402

# bench/listener.py put the addon's folder first on the path (its mailbox_client, without Odoo):
# here the addon is Odoo's, and its folder's names (data, models...) must not shadow others.
sys.path.remove(str(HERE.parent / "cats_mail_sync"))

LOGIN_PREFIX = "e2e"
POLL_SECONDS = 0.2
CRON_XMLID = "cats_mail_sync.ir_cron_cats_mail_sync"
# Odoo's server log: a scheduled action's run starting, and its end (18: "done in 0.147s", 19:
# "fully done (#loop 1; done 1; remaining 0; duration 0.15s)").
JOB_LINE = re.compile(
    r"^(?P<at>\S+ \S+) \d+ \w+ \S+ odoo\.addons\.base\.models\.ir_cron: Job .*\((?P<cron>\d+)\) "
    r"(?P<what>starting|done in (?P<done_in>[\d.]+)s|.*duration (?P<duration>[\d.]+)s\))"
)


def arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("config")
    parser.add_argument("database")
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--round-trip", type=float, default=0.0, help="seconds; 0: loopback")
    parser.add_argument("--mails", type=int, help="mailboxes that get a mail in the burst (default: all)")
    parser.add_argument("--single", type=int, default=10, help="single-mail runs (0 to skip)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a burst's mails are waited for")
    parser.add_argument("--cron-threads", type=int, default=2, help="the server's --max-cron-threads")
    parser.add_argument(
        "--run-seconds",
        type=float,
        help="cats_mail_sync.run_seconds (default: unset, the addon's own budget within Odoo's time limit)",
    )
    parser.add_argument("--concurrency", type=int, help="cats_mail_sync.concurrency (default: unset)")
    parser.add_argument(
        "--naive-schedule",
        action="store_true",
        help="keep the 10-minute interval, only move the next call a day on",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' logs (their path is said)"
    )
    args = parser.parse_args(argv)
    args.mails = args.mailboxes if args.mails is None else min(args.mails, args.mailboxes)
    return args


def say(message):
    print(f"==> {message}", flush=True)


def load():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def epoch(value):
    """A naive UTC datetime (as Odoo stores them) as a :func:`time.time`."""
    return value.replace(tzinfo=UTC).timestamp()


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def figures(values):
    if not values:
        return "none"
    return (
        f"median {statistics.median(values):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
        f"max {max(values):.2f} s"
    )


def mail(sender, recipient, message_id, subject):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    message.set_content("Thank you, I am available on Monday.\n" * 10)
    return message.as_string()


def cpu_seconds(pid):
    """User and system CPU seconds of process ``pid`` and its waited-for children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------
# The appender: another process, logged in beforehand, APPENDs when told
# ----------------------------------------------------------------------


def appender_main(port, ca_file):
    """Commands on stdin, one JSON a line: ``{"login": [[login, password], ...]}`` logs in to each
    (16 threads) and says "ready"; ``{"append": [[login, raw], ...]}`` APPENDs each raw mail into
    its login's Inbox (8 threads) and prints ``{login: time the APPEND was sent}``. Ends at EOF."""
    context = ssl.create_default_context(cafile=ca_file)
    clients = {}

    def log_in(pair):
        login, password = pair
        client = imapclient.IMAPClient("localhost", port=port, ssl=True, ssl_context=context)
        client.login(login, password)
        return login, client

    def append(pair):
        login, raw = pair
        sent = time.time()
        clients[login].append("INBOX", raw.encode())
        return login, sent

    for line in sys.stdin:
        command = json.loads(line)
        if "login" in command:
            with ThreadPoolExecutor(16) as pool:
                clients.update(pool.map(log_in, command["login"]))
            print("ready", flush=True)
        else:
            with ThreadPoolExecutor(8) as pool:
                print(json.dumps(dict(pool.map(append, command["append"]))), flush=True)
    for client in clients.values():
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - leaving anyway
            pass


class Appender:
    def __init__(self, dovecot):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--appender", str(dovecot.ssl_port), dovecot.ca_file],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline()

    def log_in(self, logins):
        answer = self._ask({"login": [[login, data.PASSWORD] for login in logins]})
        assert answer.strip() == "ready", answer

    def append(self, mails):
        """``mails``: ``{login: raw}``; ``{login: time its APPEND was sent}``."""
        return json.loads(self._ask({"append": list(mails.items())}))

    def close(self):
        self.process.stdin.close()
        self.process.wait(60)


# ----------------------------------------------------------------------
# Odoo's server and the listener, as processes of their own
# ----------------------------------------------------------------------


def addons_path():
    import odoo.tools

    value = odoo.tools.config["addons_path"]
    return value if isinstance(value, str) else ",".join(value)


class Processes:
    """Odoo's server and the listener, their logs in ``folder``."""

    def __init__(self, args, folder):
        self.args, self.folder = args, folder
        self.server = self.listener = None
        self.http_port = free_port()

    def start(self):
        base = [sys.executable, "-m", "odoo"]
        common = ["-c", self.args.config, "-d", self.args.database]
        self.server = self._start(
            "server",
            [
                *base,
                *common,
                f"--http-port={self.http_port}",
                "--http-interface=127.0.0.1",
                "--workers=0",
                f"--max-cron-threads={self.args.cron_threads}",
                "--log-level=info",
            ],
        )
        self.listener = self._start(
            "listener", [*base, f"--addons-path={addons_path()}", "cats_mail_sync_listen", *common]
        )
        return self

    def _start(self, name, command):
        with open(self.folder / f"{name}.log", "w") as log:  # the process has its own copy
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def alive(self):
        for name, process in (("server", self.server), ("listener", self.listener)):
            if process.poll() is not None:
                tail = (self.folder / f"{name}.log").read_text().splitlines()[-20:]
                raise RuntimeError(f"Odoo's {name} stopped ({process.returncode}):\n" + "\n".join(tail))

    def stop(self):
        # The listener first: on SIGTERM it logs out and forgets what it listened to.
        for process in (self.listener, self.server):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log(self, name):
        return (self.folder / f"{name}.log").read_text(errors="replace")


# ----------------------------------------------------------------------
# The database, as the bench sees it
# ----------------------------------------------------------------------


class Database:
    """The bench's view of the database: one cursor, a new snapshot at each call."""

    def __init__(self, registry, person_model):
        self.registry = registry
        self.cr = registry.cursor()
        self.person_model = person_model
        self.cr.execute(
            "SELECT res_id FROM ir_model_data WHERE module = %s AND name = %s", CRON_XMLID.split(".")
        )
        self.cron_id = self.cr.fetchone()[0]
        self.cr.rollback()

    def query(self, sql, params=()):
        try:
            self.cr.execute(sql, params)
            return self.cr.fetchall()
        finally:
            self.cr.rollback()

    def now(self):
        return self.query("SELECT now() AT TIME ZONE 'UTC'")[0][0]

    def listening(self, user_ids):
        return self.query(
            "SELECT count(*) FROM cats_mail_sync_listening WHERE state = 'listening' AND user_id = ANY(%s)",
            [user_ids],
        )[0][0]

    def due_crons(self):
        return self.query(
            "SELECT count(*) FROM ir_cron WHERE active AND nextcall <= now() AT TIME ZONE 'UTC'"
        )[0][0]

    def sync_busy(self, user_ids):
        """Why the sync is not at rest: a trigger waiting, a mailbox announced, a run under way."""
        if self.query("SELECT count(*) FROM ir_cron_trigger WHERE cron_id = %s", [self.cron_id])[0][0]:
            return "a trigger waits"
        if self.query(
            "SELECT count(*) FROM res_users WHERE id = ANY(%s) AND mailbox_new_mail_at IS NOT NULL",
            [user_ids],
        )[0][0]:
            return "a mailbox is announced"
        try:
            self.cr.execute(
                "SELECT id FROM ir_cron WHERE id = %s FOR NO KEY UPDATE NOWAIT",
                [self.cron_id],
                log_exceptions=False,
            )
        except Exception:  # noqa: BLE001 - the lock is held: a run is under way
            return "a run is under way"
        finally:
            self.cr.rollback()
        return None

    def logged(self, message_ids):
        """``{message_id: create_date}`` of those of ``message_ids`` on a person."""
        return dict(
            self.query(
                "SELECT message_id, create_date FROM mail_message WHERE model = %s AND message_id = ANY(%s)",
                [self.person_model, list(message_ids)],
            )
        )

    def doubled(self, message_ids):
        """How many of ``message_ids`` are on a person more than once."""
        return self.query(
            "SELECT count(*) FROM (SELECT message_id FROM mail_message "
            "WHERE model = %s AND message_id = ANY(%s) GROUP BY message_id HAVING count(*) > 1) doubled",
            [self.person_model, list(message_ids)],
        )[0][0]

    def announced(self, user_ids):
        return dict(
            self.query(
                "SELECT id, mailbox_new_mail_at FROM res_users "
                "WHERE id = ANY(%s) AND mailbox_new_mail_at IS NOT NULL",
                [list(user_ids)],
            )
        )

    def runs(self, since):
        """The scheduled action's runs begun since ``since``: ``[(began, mailboxes done)]``."""
        return self.query(
            "SELECT create_date, done FROM ir_cron_progress "
            "WHERE cron_id = %s AND create_date >= %s ORDER BY id",
            [self.cron_id, since],
        )

    def synced(self, since, user_ids):
        """Mailboxes of ``user_ids`` synchronized since ``since`` (idle checks included)."""
        return self.query(
            "SELECT count(*) FROM res_users WHERE id = ANY(%s) AND mailbox_last_sync_at >= %s",
            [user_ids, since.replace(microsecond=0)],
        )[0][0]

    def sync_log(self, since, user_ids):
        """The sync log's rows since ``since``: (rows, rows of an announced run, mails logged)."""
        return self.query(
            "SELECT count(*), count(*) FILTER (WHERE announced), coalesce(sum(logged), 0) "
            "FROM cats_mail_sync_run WHERE user_id = ANY(%s) AND started_at >= %s",
            [user_ids, since.replace(microsecond=0)],
        )[0]

    def close(self):
        self.cr.close()


# ----------------------------------------------------------------------
# The cases
# ----------------------------------------------------------------------


class Bench:
    def __init__(self, args, db, processes, appender, users, tag):
        self.args, self.db, self.processes, self.appender = args, db, processes, appender
        self.users = users  # [(user id, login, candidate address)], one per mailbox
        self.user_ids = [user_id for user_id, _login, _address in users]
        self.tag = tag
        self.sent_mails = 0

    def wait_quiet(self, timeout=300):
        """Until no trigger waits, no mailbox is announced and no run is under way (twice in a row)."""
        deadline, quiet, busy = time.monotonic() + timeout, 0, None
        while time.monotonic() < deadline:
            self.processes.alive()
            busy = self.db.sync_busy(self.user_ids)
            quiet = 0 if busy else quiet + 1
            if quiet >= 2:
                return
            time.sleep(0.5)
        print(f"    (the sync was still busy after {timeout} s: {busy})", flush=True)

    def send(self, chosen, name):
        """One mail from each chosen mailbox's candidate into its Inbox, at once; followed."""
        mails, wanted = {}, {}
        for user_id, login, address in chosen:
            self.sent_mails += 1
            message_id = f"<{LOGIN_PREFIX}-{self.tag}-{self.sent_mails}@bench.example.test>"
            mails[login] = mail(address, login, message_id, f"{name} {self.sent_mails}")
            wanted[message_id] = (user_id, login)
        since = self.db.now()
        pids = {"server": self.processes.server.pid, "listener": self.processes.listener.pid}
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        sent = self.appender.append(mails)
        result = self.follow(wanted, sent, since)
        result["took"] = time.monotonic() - started
        result["cpu"] = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
        return result

    def follow(self, wanted, sent, since):
        """Poll until each of ``wanted`` is on its candidate, or the timeout; where the time went."""
        seen, began, announced = {}, {}, {}
        user_ids = {user_id for user_id, _login in wanted.values()}
        deadline = time.monotonic() + self.args.timeout
        while len(seen) < len(wanted) and time.monotonic() < deadline:
            now = time.time()
            for user_id, at in self.db.announced(user_ids - announced.keys()).items():
                announced[user_id] = epoch(at)
            for message_id, created in self.db.logged(wanted.keys() - seen.keys()).items():
                seen[message_id], began[message_id] = now, epoch(created)
            if len(seen) < len(wanted):
                self.processes.alive()
                time.sleep(POLL_SECONDS)
        self.wait_quiet(timeout=120)  # the last run is over, and says what it did
        runs = self.runs(since)
        starts = [start for start, _done, _seconds in runs]
        result = {
            "latencies": [],
            "missed": len(wanted) - len(seen),
            "last": max(seen.values()) - min(sent.values()) if seen else None,
            "appends": max(sent.values()) - min(sent.values()),
            "to_announce": [],  # APPEND to the mailbox announced (listener, Dovecot)
            "to_run": [],  # announced to the start of the run that synced it
            "in_run": [],  # that run's start to the transaction that logs the mail (its create_date)
            "to_record": [],  # that transaction's start to the message seen
            "since": since,
            "runs": runs,
            "announced_seen": len(announced),
            "doubled": self.db.doubled(wanted),
        }
        for message_id, (user_id, login) in wanted.items():
            if message_id not in seen:
                continue
            result["latencies"].append(seen[message_id] - sent[login])
            result["to_record"].append(seen[message_id] - began[message_id])
            run = bisect.bisect_right(starts, began[message_id] + 0.001) - 1
            if run >= 0:
                result["in_run"].append(began[message_id] - starts[run])
            if user_id in announced:
                result["to_announce"].append(announced[user_id] - sent[login])
                if run >= 0:
                    result["to_run"].append(starts[run] - announced[user_id])
        return result

    def runs(self, since):
        """The scheduled action's runs begun since ``since``: ``[(began, mailboxes, seconds or None)]``
        (the seconds from the server log)."""
        rows = self.db.runs(since)
        durations = job_durations(self.processes.log("server"), self.db.cron_id, epoch(since))
        if len(durations) != len(rows):
            durations = [None] * len(rows)
        return [(epoch(began), done, seconds) for (began, done), seconds in zip(rows, durations, strict=True)]

    def describe(self, name, result):
        latencies = result["latencies"]
        print(f"--- {name} ({load()})", flush=True)
        print(
            f"    logged {len(latencies)}, logged twice {result['doubled']}, missed {result['missed']} "
            f"(not there within {self.args.timeout:.0f} s); "
            f"APPEND to message on the record: {figures(latencies)}",
            flush=True,
        )
        if result["last"] is not None:
            print(
                f"    APPENDs spread over {result['appends']:.2f} s; the last message came "
                f"{result['last']:.1f} s after the first APPEND",
                flush=True,
            )
        print(
            f"    where the time went (announcement seen for {result['announced_seen']} mailboxes):\n"
            f"      APPEND to announced (Dovecot, listener): {figures(result['to_announce'])}\n"
            f"      announced to the start of the run that synced it: {figures(result['to_run'])}\n"
            f"      that run's start to the transaction that logs the mail: {figures(result['in_run'])}\n"
            f"      that transaction's start to the message seen: {figures(result['to_record'])}",
            flush=True,
        )
        runs, since = result["runs"], epoch(result["since"])
        if runs:
            dones = [done for _start, done, _seconds in runs]
            seconds = [value for _start, _done, value in runs if value is not None]
            shown = ", ".join(
                f"+{start - since:.1f} s: {done}" + (f" in {value:.1f} s" if value is not None else "")
                for start, done, value in runs[:15]
            )
            more = f", ... ({len(runs) - 15} more)" if len(runs) > 15 else ""
            print(
                f"    scheduled action: {len(runs)} runs, {sum(dones)} mailbox syncs "
                f"(per run {min(dones)} to {max(dones)}), {sum(seconds):.1f} s running in all; "
                f"(began after the first APPEND: mailboxes synced in seconds): {shown}{more}",
                flush=True,
            )
        else:
            print("    scheduled action: no run recorded", flush=True)
        rows, announced_rows, logged = self.db.sync_log(result["since"], self.user_ids)
        synced = self.db.synced(result["since"], self.user_ids)
        print(
            f"    mailboxes synchronized since the first APPEND: {synced} of {len(self.user_ids)} "
            f"(sync log rows: {rows}, {announced_rows} of an announced run; {logged} mails logged)",
            flush=True,
        )
        print(
            f"    CPU meanwhile ({result['took']:.1f} s): Odoo's server {result['cpu']['server']:.1f} s, "
            f"the listener {result['cpu']['listener']:.1f} s",
            flush=True,
        )

    def single(self):
        count = self.args.single
        results = []
        say(f"Single mail, nothing else going on, {count} times")
        step = max(1, len(self.users) // max(count, 1))
        for number in range(count):
            self.wait_quiet()
            time.sleep(1.0)
            chosen = [self.users[(number * step + step // 2) % len(self.users)]]
            result = self.send(chosen, "Single")
            latency = f"{result['latencies'][0]:.2f} s" if result["latencies"] else "missed"
            parts = [
                f"{label} {result[key][0]:.2f} s"
                for label, key in (
                    ("announced", "to_announce"),
                    ("run began", "to_run"),
                    ("logging began", "in_run"),
                    ("seen", "to_record"),
                )
                if result[key]
            ]
            done = sum(done for _start, done, _seconds in result["runs"])
            print(
                f"    #{number + 1}: {latency} ({', '.join(parts)}; {len(result['runs'])} run(s) syncing "
                f"{done} mailbox(es); {load()})",
                flush=True,
            )
            results.append(result)
        merged = {
            key: [value for result in results for value in result[key]]
            for key in ("latencies", "to_announce", "to_run", "in_run", "to_record", "runs")
        }
        merged.update(
            missed=sum(result["missed"] for result in results),
            last=None,
            since=results[0]["since"],
            took=sum(result["took"] for result in results),
            cpu={name: sum(result["cpu"][name] for result in results) for name in ("server", "listener")},
            announced_seen=sum(result["announced_seen"] for result in results),
            doubled=sum(result["doubled"] for result in results),
        )
        self.describe(f"single mail, {count} runs, {self.where()}", merged)
        return merged

    def burst(self):
        chosen = self.users[: self.args.mails]
        say(f"Burst: one mail into each of {len(chosen)} Inboxes at once")
        self.wait_quiet()
        time.sleep(1.0)
        result = self.send(chosen, "Burst")
        self.describe(f"burst into {len(chosen)} of {len(self.users)} mailboxes, {self.where()}", result)
        widths = [
            line.split("Mailboxes read ", 1)[1].strip()
            for line in self.processes.log("server").splitlines()
            if "Mailboxes read " in line
        ]
        if widths:
            print(f"    the last runs read (server log): {'; '.join(widths[-8:])}", flush=True)
        return result

    def where(self):
        return f"{self.args.round_trip * 1000:.0f} ms round trip" if self.args.round_trip else "loopback"


def job_durations(log, cron_id, since):
    """Seconds each run of scheduled action ``cron_id`` took that began after ``since`` (a
    :func:`time.time`), as Odoo's server logs them (18: "done in", 19: "duration")."""
    durations, counting = [], False
    for line in log.splitlines():
        found = JOB_LINE.match(line)
        if not found or int(found["cron"]) != cron_id:
            continue
        if found["what"] == "starting":
            # The log's times are the server's local time, as time.time() reads it.
            counting = datetime.strptime(found["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp() >= since - 0.5
        elif counting:
            durations.append(float(found["done_in"] or found["duration"]))
            counting = False
    return durations


# ----------------------------------------------------------------------
# Set-up and clean-up
# ----------------------------------------------------------------------


def retire(env):
    """Take the mailboxes of earlier runs out of the sync (their Dovecot is gone)."""
    env.cr.execute(
        "UPDATE res_users SET mailbox_state = 'inactive', mailbox_new_mail_at = NULL "
        "WHERE login LIKE %s AND mailbox_state = 'active'",
        [f"{LOGIN_PREFIX}-%@{data.DOMAIN}"],
    )
    return env.cr.rowcount


def set_up(env, args, dovecot, port, tag):
    """Candidates, then recruiters with active mailboxes on ``port``: ``[(user id, login, address)]``."""
    from odoo.addons.cats_mail_sync import series

    params = env["ir.config_parameter"].sudo()
    params.set_param("cats_mail_sync.ca_file", dovecot.ca_file)
    params.set_param("cats_mail_sync.allow_private_hosts", "True")
    params.set_param("cats_mail_sync.run_seconds", str(args.run_seconds) if args.run_seconds else False)
    params.set_param("cats_mail_sync.listen", "True")
    params.set_param("cats_mail_sync.concurrency", str(args.concurrency) if args.concurrency else False)
    logins = [data.address(f"{LOGIN_PREFIX}-{tag}-{n:05d}") for n in range(args.mailboxes)]
    addresses = [f"c{n}.{tag}@pool.example.com" for n in range(args.mailboxes)]
    say(f"Creating {args.mailboxes} candidates ({series.PERSON})")
    # First: candidates made once mailboxes are active would have every mailbox look back for them.
    for number, address in enumerate(addresses):
        series.new_person(env, {"partner_name": f"Candidate {number} {tag}", "email_from": address})
        if number % 200 == 199:
            env.cr.commit()
    env.cr.commit()
    say(f"Creating {args.mailboxes} recruiters with their mailboxes (Dovecot port {port})")
    users = env["res.users"]
    for start in range(0, len(logins), 250):
        users |= data.recruiters(env, dovecot, logins[start : start + 250], port, active=False)
        env.cr.commit()
    data.set_state(users, "active")
    env.cr.commit()
    data.analyze(env.cr)
    env.cr.commit()
    by_login = {user.login: user.id for user in users}
    return [(by_login[login], login, address) for login, address in zip(logins, addresses, strict=True)]


def schedule(env, args, user_ids):
    """The state a scheduled run leaves: every mailbox synchronized since the cycle began, the
    next run later (a day away); the cron's interval and next call as they were, to put back."""
    cron = env.ref(CRON_XMLID).sudo()
    before = (cron.interval_number, cron.interval_type, cron.nextcall)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    if args.naive_schedule:
        interval, nextcall = (cron.interval_number, cron.interval_type), now + timedelta(days=1)
    else:
        interval, nextcall = (1, "days"), now + timedelta(days=1) - timedelta(minutes=1)
    env.cr.execute(
        "UPDATE ir_cron SET interval_number = %s, interval_type = %s, nextcall = %s WHERE id = %s",
        [*interval, nextcall, cron.id],
    )
    env.cr.execute("DELETE FROM ir_cron_trigger WHERE cron_id = %s", [cron.id])
    env.cr.execute(
        "UPDATE res_users SET mailbox_last_sync_at = %s, mailbox_new_mail_at = NULL WHERE id = ANY(%s)",
        [now, user_ids],
    )
    env.cr.commit()
    return before


def unschedule(env, before):
    """The cron's interval as it was, its next call one interval from now at the latest."""
    interval_number, interval_type, nextcall = before
    soon = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(minutes=10)
    env.cr.execute(
        "UPDATE ir_cron SET interval_number = %s, interval_type = %s, nextcall = %s WHERE id = %s",
        [interval_number, interval_type, min(nextcall, soon), env.ref(CRON_XMLID).id],
    )


def wait_listening(db, processes, user_ids, timeout):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        processes.alive()
        count = db.listening(user_ids)
        if count == len(user_ids):
            return time.monotonic() - started
        time.sleep(1.0)
    raise RuntimeError(
        f"only {db.listening(user_ids)} of {len(user_ids)} mailboxes listened to after {timeout} s"
    )


def main(argv):
    args = arguments(argv)
    import odoo
    import odoo.modules.registry
    import odoo.release
    import odoo.tools

    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database])
    from odoo.addons.cats_mail_sync import series

    tag = format(int(time.time()) % 10**8, "x")
    folder = Path(tempfile.mkdtemp(prefix="cats-e2e-"))
    files = os.sysconf("SC_OPEN_MAX")
    print(
        f"Odoo {odoo.release.version}, {os.cpu_count()} cores, files per process: {files}; "
        f"{args.mailboxes} mailboxes, {args.round_trip * 1000:.0f} ms round trip; {load()}",
        flush=True,
    )
    registry = odoo.modules.registry.Registry(args.database)
    logins = [data.address(f"{LOGIN_PREFIX}-{tag}-{n:05d}") for n in range(args.mailboxes)]
    before, users = None, []
    with ExitStack() as stack:
        dovecot = stack.enter_context(
            listener_bench.BenchDovecot(dict.fromkeys(logins, data.PASSWORD), listener_bench.MANY)
        )
        port = dovecot.ssl_port
        if args.round_trip:
            port = stack.enter_context(LatencyProxy(dovecot.ssl_port, args.round_trip)).port
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            retired = retire(env)
            if retired:
                say(f"{retired} mailboxes of earlier runs taken out of the sync")
            cr.commit()
            users = set_up(env, args, dovecot, port, tag)
            before = schedule(env, args, [user_id for user_id, _login, _address in users])
        db = Database(registry, series.PERSON)
        stack.callback(db.close)
        processes = Processes(args, folder)
        stack.callback(clean_up, registry, processes, before, folder, args.keep_logs)
        say("Starting Odoo's server and the listener")
        processes.start()
        user_ids = [user_id for user_id, _login, _address in users]
        took = wait_listening(db, processes, user_ids, timeout=max(300, 3 * args.mailboxes / 50))
        say(f"The listener holds all {len(user_ids)} mailboxes ({took:.0f} s after starting; {load()})")
        deadline = time.monotonic() + 300
        while db.due_crons() and time.monotonic() < deadline:
            time.sleep(1.0)  # Odoo's other scheduled actions, due since the database was made
        appender = Appender(dovecot)
        stack.callback(appender.close)
        bench = Bench(args, db, processes, appender, users, tag)
        appender.log_in([login for _user_id, login, _address in users])
        if args.single:
            bench.single()
        if args.mails:
            bench.burst()
    print(f"Logs: {folder}" if args.keep_logs else "", flush=True)


def clean_up(registry, processes, before, folder, keep_logs):
    import odoo

    processes.stop()
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        retire(env)
        if before:
            unschedule(env, before)
    if not keep_logs:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--appender":
        appender_main(int(sys.argv[2]), sys.argv[3])
    else:
        main(sys.argv[1:])
