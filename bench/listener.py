"""The mail listener at scale: what holding many mailboxes costs, and how soon new mail is told.

``python3 bench/listener.py [--mailboxes 1000] [--burst 1000] [--idle-seconds 60] [--round-trip 0.05]
[--compare 200]`` prints figures; no Odoo. It starts Dovecots of its own (harness.dovecot, with
settings for many connections: one imap process serves many clients, login processes proxy TLS
for thousands) and a listener in this process, with its default settings (logins paced at 50 a
second per server, 16 login workers) unless told otherwise.

- **hold**: ``--mailboxes`` mailboxes held (NOTIFY: one connection each): the time to bring them
  all up, the listener's memory per held connection (RSS growth / connections, after one mailbox
  warmed up), its file descriptors, and its CPU over ``--idle-seconds`` when nothing happens.
- **burst**: one mail APPENDed into each of ``--burst`` mailboxes at once, by another process that
  logged in beforehand; latency from each APPEND being sent to the mailbox's ``on_new_mail``:
  median, 95th percentile, the slowest, and mailboxes not signalled within 30 s. Dovecot itself
  waits half a second before it tells an IDLE client (it gathers changes).
- ``--round-trip``: the same burst with the listener behind bench/latency_proxy.py (0 to skip).
- ``--compare N``: NOTIFY against a second IDLE connection on Sent, on a Dovecot with Debian's
  default process model (one imap and one imap-login process per connection): connections and
  Dovecot processes per mailbox, Dovecot's memory (PSS of its processes, minus an idle Dovecot's),
  the listener's memory, and the latency of a burst of mail into Sent (0 to skip). In that model
  each listening connection costs Dovecot an inotify instance, and Linux gives a user 128 by
  default (``fs.inotify.max_user_instances``): past them Dovecot logs "Inotify instance limit ...
  exceeded" and looks for changes only every 30 s (``mailbox_idle_check_interval``). Keep N at
  60 or below for latencies that compare the two ways, not the limit (two IDLE: 120 instances).

One process may hold 20,000 files here (``ulimit -n``): 10,000 mailboxes fit with NOTIFY, and the
appender's connections live in a process of their own.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imapclient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cats_mail_sync"))
sys.path.insert(0, str(HERE.parent / "cats_mail_sync" / "tests"))
from latency_proxy import LatencyProxy  # noqa: E402

from harness import dovecot as harness_dovecot  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402
from mailbox_client import connection, listener  # noqa: E402

PASSWORD = "Bench-passw0rd-4-all"
SIGNAL_WAIT = 30.0

# Many connections: a handful of login processes proxy TLS for thousands of clients each, one
# imap process serves hundreds of IDLE clients.
MANY = """
default_process_limit = 2000
default_client_limit = 25000
default_vsz_limit = 4G
service imap-login {
  service_count = 0
  process_min_avail = 2
  process_limit = 4
  client_limit = 6000
}
service imap {
  service_count = 0
  client_limit = 500
  process_limit = 100
}
service auth {
  client_limit = 25000
}
service anvil {
  client_limit = 25000
}
"""

# Debian's defaults but for the number of processes: one imap-login and one imap process per
# connection.
DEFAULT_MODEL = """
default_process_limit = 2000
default_client_limit = 4000
service auth {
  client_limit = 6000
}
service anvil {
  client_limit = 6000
}
"""


class BenchDovecot(Dovecot):
    """The harness's Dovecot with ``extra`` settings added to its configuration."""

    def __init__(self, users, extra, **options):
        super().__init__(users, **options)
        self.extra = extra

    def start(self):
        original = harness_dovecot.CONFIG
        harness_dovecot.CONFIG = original + self.extra.replace("{", "{{").replace("}", "}}")
        try:
            return super().start()
        finally:
            harness_dovecot.CONFIG = original

    def processes(self):
        """``{pid: name}`` of this Dovecot's processes (the master's children and the master)."""
        master = int((self.root / "run" / "master.pid").read_text())
        found = {master: "dovecot"}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                name = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found[int(entry)] = name
        return found

    def memory(self):
        """(processes, PSS in MiB) of this Dovecot, and how many are imap / imap-login."""
        total, names = 0, []
        for pid, name in self.processes().items():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            names.append(name)
        return {
            "processes": len(names),
            "imap": sum(1 for name in names if name.endswith("/imap")),
            "imap-login": sum(1 for name in names if name.endswith("/imap-login")),
            "pss_mib": total / 1024,
        }


def rss_kib():
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))


def open_files():
    return len(os.listdir("/proc/self/fd"))


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def logins(count):
    return [f"user{n}@example.test" for n in range(count)]


class Recorder:
    """``on_new_mail``: the first signal per mailbox after ``arm()``."""

    def __init__(self):
        self.first = {}
        self.armed = False
        self.calls = 0

    def arm(self):
        self.first = {}
        self.armed = True

    def __call__(self, key):
        self.calls += 1
        if self.armed and key not in self.first:
            self.first[key] = time.time()


def watch(server, login, port):
    return listener.Watch(
        key=login,
        server=connection.Server(server.host, port, "ssl"),
        login=login,
        credential=lambda: {"password": PASSWORD},
        ca_file=server.ca_file,
        allow_private=True,
    )


def wait_listening(running, keys, timeout):
    """Seconds until every mailbox of ``keys`` is listening (None if not within ``timeout``)."""
    started = time.monotonic()
    keys = set(keys)
    while time.monotonic() - started < timeout:
        statuses = running.statuses()
        if all(statuses.get(key) and statuses[key].state == listener.LISTENING for key in keys):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


# ----------------------------------------------------------------------
# The appender: another process, logged in beforehand, APPENDs on "go"
# ----------------------------------------------------------------------


def appender_main(port, ca_file, folder):
    """Read logins (JSON) from stdin, log in to each, say "ready"; on "go" APPEND one mail into
    ``folder`` of each (8 threads), then print ``{login: time the APPEND was sent}``."""
    import ssl

    chosen = json.loads(sys.stdin.readline())
    context = ssl.create_default_context(cafile=ca_file)

    def log_in(login):
        client = imapclient.IMAPClient("localhost", port=port, ssl=True, ssl_context=context)
        client.login(login, PASSWORD)
        return login, client

    with ThreadPoolExecutor(16) as pool:
        clients = list(pool.map(log_in, chosen))
    print("ready", flush=True)
    sys.stdin.readline()
    sent = {}
    raw = b"From: candidate@example.org\r\nSubject: Interview\r\n\r\nSee you on Monday.\r\n"

    def append(pair):
        login, client = pair
        sent[login] = time.time()
        client.append(folder, raw)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(append, clients))
    print(json.dumps(sent), flush=True)
    for _login, client in clients:
        client.logout()


def burst(server, recorder, chosen, folder="INBOX"):
    """APPEND into each of ``chosen`` at once; latencies in seconds, and the mailboxes missed."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--appender", str(server.ssl_port), server.ca_file, folder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    process.stdin.write(json.dumps(chosen) + "\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == "ready"
    recorder.arm()
    process.stdin.write("go\n")
    process.stdin.flush()
    sent = json.loads(process.stdout.readline())
    process.wait(60)
    deadline = time.time() + SIGNAL_WAIT
    while len(recorder.first) < len(chosen) and time.time() < deadline:
        time.sleep(0.1)
    recorder.armed = False
    latencies = sorted(recorder.first[login] - sent[login] for login in chosen if login in recorder.first)
    return latencies, len(chosen) - len(latencies)


def describe(latencies, missed):
    if not latencies:
        return f"no signal ({missed} missed)"
    p95 = latencies[min(len(latencies) - 1, round(0.95 * len(latencies)) - 1)]
    return (
        f"median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, slowest {latencies[-1]:.2f} s, "
        f"{missed} not signalled within {SIGNAL_WAIT:.0f} s"
    )


# ----------------------------------------------------------------------
# The runs
# ----------------------------------------------------------------------


def hold(args):
    """Hold ``--mailboxes`` mailboxes; their cost; a burst, at loopback then behind latency."""
    print(f"== hold {args.mailboxes} mailboxes (NOTIFY), Dovecot set for many connections")
    with BenchDovecot(dict.fromkeys(logins(args.mailboxes), PASSWORD), MANY) as server:
        recorder = Recorder()
        running = listener.Listener(recorder, logins_per_second=args.logins_per_second).start()
        try:
            everyone = logins(args.mailboxes)
            running.add(watch(server, everyone[0], server.ssl_port))
            wait_listening(running, everyone[:1], 30)
            rss, files = rss_kib(), open_files()
            for login in everyone[1:]:
                running.add(watch(server, login, server.ssl_port))
            longest = max(120, 3 * args.mailboxes / args.logins_per_second)
            took = wait_listening(running, everyone, timeout=longest)
            held = running.held()
            grown_kib = rss_kib() - rss
            print(f"brought up: {took:.1f} s for {args.mailboxes - 1} mailboxes ({held} connections held)")
            per_connection = grown_kib / max(held - 1, 1)
            print(f"listener memory: +{grown_kib / 1024:.1f} MiB, {per_connection:.1f} KiB per connection")
            print(f"file descriptors: {open_files()} (+{open_files() - files})")
            print(f"Dovecot: {server.memory()}")
            cpu = cpu_seconds()
            time.sleep(args.idle_seconds)
            used = cpu_seconds() - cpu
            print(
                f"CPU when nothing happens: {used:.2f} s in {args.idle_seconds} s "
                f"({100 * used / args.idle_seconds:.2f} % of one core); signals meanwhile: {recorder.calls}"
            )
            chosen = everyone[: args.burst]
            latencies, missed = burst(server, recorder, chosen)
            print(f"burst into {len(chosen)} Inboxes, loopback: {describe(latencies, missed)}")
        finally:
            stopping = time.monotonic()
            running.stop()
            stopped = time.monotonic() - stopping
        time.sleep(2.0)
        log = (server.root / "dovecot.log").read_text().splitlines()
        goodbyes = sum(1 for line in log if "imap(user" in line and "Disconnected: Logged out" in line)
        print(f"stop: {stopped:.1f} s; Dovecot logged {goodbyes} LOGOUTs (the appender's included)")
        if args.round_trip:
            behind_latency(args, server)


def behind_latency(args, server):
    chosen = logins(args.burst)
    print(f"== {len(chosen)} mailboxes behind a {args.round_trip * 1000:.0f} ms round trip")
    with LatencyProxy(server.ssl_port, args.round_trip) as proxy:
        recorder = Recorder()
        running = listener.Listener(recorder, logins_per_second=args.logins_per_second).start()
        try:
            started = time.monotonic()
            for login in chosen:
                running.add(watch(server, login, proxy.port))
            took = wait_listening(running, chosen, timeout=600)
            print(f"brought up: {took:.1f} s ({time.monotonic() - started:.1f} s)")
            latencies, missed = burst(server, recorder, chosen)
            where = f"{args.round_trip * 1000:.0f} ms"
            print(f"burst into {len(chosen)} Inboxes, {where}: {describe(latencies, missed)}")
        finally:
            running.stop()
            time.sleep(2 * args.round_trip + 1.0)  # the last goodbyes through the proxy


def compare(args):
    """NOTIFY against a second IDLE connection, on Debian's default process model."""
    count = args.compare
    print(f"== NOTIFY or two IDLE connections, {count} mailboxes, one Dovecot process per connection")
    with BenchDovecot(dict.fromkeys(logins(count), PASSWORD), DEFAULT_MODEL) as server:
        time.sleep(1.0)
        idle = server.memory()
        print(f"Dovecot with no client: {idle}")
        for use_notify in (True, False):
            recorder = Recorder()
            running = listener.Listener(recorder, use_notify=use_notify).start()
            try:
                chosen = logins(count)
                running.add(watch(server, chosen[0], server.ssl_port))
                wait_listening(running, chosen[:1], 30)
                rss = rss_kib()
                for login in chosen[1:]:
                    running.add(watch(server, login, server.ssl_port))
                took = wait_listening(running, chosen, timeout=300)
                time.sleep(1.0)
                held = running.held()
                grown = rss_kib() - rss
                memory = server.memory()
                name = "NOTIFY" if use_notify else "two IDLE"
                print(f"-- {name}: up in {took:.1f} s, {held} connections ({held / count:.1f} per mailbox)")
                print(
                    f"   Dovecot: {memory['processes'] - idle['processes']} more processes "
                    f"({memory['imap']} imap, {memory['imap-login']} imap-login), "
                    f"+{memory['pss_mib'] - idle['pss_mib']:.1f} MiB PSS "
                    f"({1024 * (memory['pss_mib'] - idle['pss_mib']) / count:.0f} KiB per mailbox)"
                )
                per_mailbox = grown / max(count - 1, 1)
                print(f"   listener: +{grown / 1024:.1f} MiB ({per_mailbox:.1f} KiB per mailbox)")
                latencies, missed = burst(server, recorder, chosen, folder=server.sent_folder)
                print(f"   burst into {count} Sent folders: {describe(latencies, missed)}")
            finally:
                running.stop()
            time.sleep(2.0)  # the server's processes end


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--appender":
        appender_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=int, default=60)
    parser.add_argument("--round-trip", type=float, default=0.05)
    parser.add_argument("--compare", type=int, default=60)
    parser.add_argument("--logins-per-second", type=float, default=50.0)
    args = parser.parse_args()
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(f"machine: {os.cpu_count()} cores; files per process: {files}")
    if args.compare:
        compare(args)
    if args.mailboxes:
        hold(args)
    threading.Event().wait(0.1)


if __name__ == "__main__":
    main()
