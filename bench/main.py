"""The benchmark: builds its data, measures, prints a table, writes results.md (the rows of the
Odoo series it ran on) and results-odooNN.png.

Run by bench/run on a scratch database (the sync commits as it goes):
``main.py CONFIG DATABASE [options]`` (``--help``). One Dovecot serves every mailbox;
"behind latency" means through :class:`latency_proxy.LatencyProxy` (50 ms round trip by
default), "loopback" means straight to Dovecot.
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import odoo
import odoo.modules.registry
import odoo.release
import odoo.tools

HERE = Path(__file__).resolve().parent
# The test servers (harness) ship with the addon's tests.
sys.path.insert(0, str(HERE.parent / "cats_mail_sync" / "tests"))
import data  # noqa: E402
import report  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402

from harness.dovecot import Dovecot  # noqa: E402

QUICK = {
    "mailboxes": 100,
    "sequential_mailboxes": 50,
    "scan_mails": 2000,
    "wan_mails": 100,
    "log_mails": 50,
    "idle_sizes": "100,1000,5000",
    "contacts": "1000,10000",
    "memory_mails": 5,
}
# bench/peak_memory.py's measure(config, database, mails, mb), its figures printed as JSON.
PEAK_MEMORY = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); import peak_memory; "
    "print(json.dumps(peak_memory.measure(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))"
)
# Mails the logging rate posts each carry an attachment of this size.
ATTACHMENT = 100 * 1024


def arguments(argv):
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n", 1)[0])
    parser.add_argument("config")
    parser.add_argument("database")
    parser.add_argument("--quick", action="store_true", help="a small run: " + str(QUICK))
    parser.add_argument("--mailboxes", type=int, default=10000, help="mailboxes in the idle cycle")
    parser.add_argument(
        "--concurrency",
        type=int,
        help="cats_mail_sync.concurrency in the cycle (default: unset)",
    )
    parser.add_argument(
        "--sequential-mailboxes", type=int, default=200, help="mailboxes the sequential cycle reads (scaled)"
    )
    parser.add_argument("--round-trip", type=float, default=0.05, help="the proxy's round trip, seconds")
    parser.add_argument("--scan-mails", type=int, default=20000, help="new mails scanned on loopback")
    parser.add_argument("--wan-mails", type=int, default=500, help="new mails scanned behind latency")
    parser.add_argument("--log-mails", type=int, default=200, help="mails logged (all matching)")
    parser.add_argument("--idle-sizes", default="1000,20000,100000", help="idle mailboxes' sizes")
    parser.add_argument("--contacts", default="1000,100000,1000000", help="contact bases of the match")
    parser.add_argument("--memory-mails", type=int, default=50, help="mails of 25 MB for peak memory")
    parser.add_argument("--repeat", type=int, default=5, help="idle runs per figure (median)")
    parser.add_argument("--out", default=str(HERE), help="where results.md and results-odooNN.png go")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    args.idle_sizes = [int(size) for size in args.idle_sizes.split(",")]
    args.contacts = [int(count) for count in args.contacts.split(",")]
    return args


def optional(name):
    """bench/NAME.py, when this checkout has it."""
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def say(message):
    print(f"==> {message}", flush=True)


def ms(seconds):
    return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


class Bench:
    def __init__(self, args, env, dovecot, proxy, measure):
        self.args, self.env, self.dovecot, self.proxy = args, env, dovecot, proxy
        self.measure = measure
        self.rows = []
        self.cycle, self.idle_costs, self.match_costs = {}, {}, None

    def row(self, *args, **kwargs):
        row = report.Row(*args, **kwargs)
        self.rows.append(row)
        print("   ", " | ".join(cell for cell in row.cells() if cell), flush=True)

    def raw(self, function, login, wan, *args):
        port = self.proxy.port if wan else self.dovecot.ssl_port
        return function(self.dovecot.host, port, self.dovecot.ca_file, login, *args)

    # -- the measurements ------------------------------------------------------

    def idle_cycle(self, users):
        """A cycle over ``users``' idle mailboxes: sequential over the first
        ``--sequential-mailboxes`` of them, scaled to all (a sequential run is a sum of
        per-mailbox costs), then over all with the default settings (or ``--concurrency``)."""
        args, env = self.args, self.env
        sample = min(args.sequential_mailboxes, len(users))
        say(f"Idle cycle behind latency, one at a time, {sample} of {len(users)} mailboxes")
        waiting = users[sample:]
        data.set_state(waiting, "inactive")
        sequential = self.measure.idle_cycle(env, sample, concurrency=1).seconds * len(users) / sample
        data.set_state(waiting, "active")
        setting = f"concurrency {args.concurrency}" if args.concurrency else "default settings"
        say(f"Idle cycle behind latency, {setting}, {len(users)} mailboxes")
        cycle = self.measure.idle_cycle(env, len(users), concurrency=args.concurrency)
        scaled = f"{sample} measured, x{len(users) / sample:g}" if sample < len(users) else ""
        self.cycle = {
            f"one at a time\n({scaled})" if scaled else "one at a time": sequential,
            f"{setting}\n({cycle.widest} at once at most)": cycle.seconds,
        }
        where = f"{len(users)} mailboxes, {args.round_trip * 1000:.0f} ms RTT"
        self.row(
            f"idle cycle, {where}, {setting} ({cycle.widest} at once at most, {cycle.runs} runs)",
            f"{cycle.seconds:.1f} s ({ms(cycle.seconds / len(users))}/mailbox)",
            f"one at a time: {sequential:.1f} s" + (f" ({scaled})" if scaled else ""),
            sequential / cycle.seconds,
            "within one 10-minute cycle (≤ 600 s)",
            cycle.seconds <= 600,
        )
        self.row(
            f"idle cycle, {where}: CPU of the Odoo process",
            f"{cycle.cpu_seconds:.1f} CPU s ({ms(cycle.cpu_seconds / len(users))}/mailbox)",
            f"the cycle's {cycle.seconds:.1f} s",
            cycle.cpu_seconds / cycle.seconds,
            "less than one core (< 1x)",
            cycle.cpu_seconds < cycle.seconds,
        )
        self.row(
            f"idle cycle, {where}: database statements",
            f"{cycle.statements / len(users):.1f} per mailbox ({cycle.statements} in all)",
            f"INSERT: {', '.join(f'{n} into {t}' for t, n in cycle.inserts.items()) or 'none'}; "
            f"UPDATE: {cycle.updates / len(users):.2f} per mailbox",
            goal="a handful per mailbox (≤ 10), no sync log row",
            met=cycle.statements / len(users) <= 10 and not cycle.inserts.get("cats_mail_sync_run"),
        )

    def scan(self, user, wan):
        args, env = self.args, self.env
        login = user.login
        if wan:
            say(f"Scan of {args.wan_mails} new mails behind latency, and one FETCH per mail")
            data.set_port(user, self.proxy.port)
            seconds, looked_at = self.measure.scan(env, user)
            baseline = self.raw(self.measure.one_fetch_per_mail, login, True)
            self.row(
                f"scan, {looked_at} new mails, {args.round_trip * 1000:.0f} ms RTT",
                f"{looked_at / seconds:.0f} mails/s",
                f"one FETCH RFC822 per mail (fetchmail): {looked_at / baseline:.0f} mails/s",
                baseline / seconds,
                "≥ 10x",
                baseline / seconds >= 10,
            )
            return
        say(f"Scan of {args.scan_mails} new mails on loopback, and raw imapclient (best of 2)")
        self.raw(self.measure.raw_headers, login, False)  # Dovecot caches the header fields
        raws, scans = [], []
        for _ in range(2):
            raws.append(self.raw(self.measure.raw_headers, login, False))
            scans.append(self.measure.scan(env, user))
        baseline = min(raws)
        seconds, looked_at = min(scans)
        self.row(
            f"scan, {looked_at} new mails, loopback",
            f"{looked_at / seconds:.0f} mails/s",
            f"raw imapclient header FETCH: {looked_at / baseline:.0f} mails/s",
            baseline / seconds,
            "≥ 0.7x",
            baseline / seconds >= 0.7,
        )

    def logging(self, user, raws, targets):
        args, env = self.args, self.env
        say(f"Logging of {args.log_mails} matching mails with a {ATTACHMENT // 1024} KB attachment each")
        posted = self.measure.post_loop(env, raws, targets)
        processed = self.measure.process_loop(env, raws, targets)
        data.rewind(user)
        seconds, run = self.measure.sync(env, user)
        rate = run.logged / seconds
        if run.logged != len(raws):
            print(f"    warning: {run.logged} of {len(raws)} mails logged", flush=True)
        self.row(
            f"logging, {run.logged} mails with attachment, loopback",
            f"{rate:.1f} mails/s",
            f"bare message_post loop: {len(raws) / posted:.1f} mails/s",
            rate / (len(raws) / posted),
            "≥ 0.8x",
            rate / (len(raws) / posted) >= 0.8,
        )
        self.row(
            "logging, same mails",
            f"{rate:.1f} mails/s",
            f"message_process (fetchmail): {len(raws) / processed:.1f} mails/s",
            rate / (len(raws) / processed),
        )

    def idle(self, users):
        args, env = self.args, self.env
        for wan in (False, True):
            where = f"{args.round_trip * 1000:.0f} ms RTT" if wan else "loopback"
            goal = 1.05 if wan else 1.5
            say(f"Idle cost of one mailbox, {where}")
            sync_costs, raw_costs = {}, {}
            for size, user in users.items():
                data.set_port(user, self.proxy.port if wan else self.dovecot.ssl_port)
                self.measure.sync(env, user)  # the first run after a move may find something
                sync_costs[size] = self.measure.idle(env, user, args.repeat)
                raw_costs[size] = self.raw(self.measure.raw_check, user.login, wan, args.repeat)
                self.row(
                    f"idle cost, mailbox of {size} mails, {where}",
                    ms(sync_costs[size]),
                    f"raw check (connect, login, 2 STATUS): {ms(raw_costs[size])}",
                    sync_costs[size] / raw_costs[size],
                    f"≤ {goal}x, flat",
                    sync_costs[size] / raw_costs[size] <= goal,
                )
            smallest, largest = min(sync_costs), max(sync_costs)
            self.row(
                f"idle cost growth, {smallest} to {largest} mails, {where}",
                ms(sync_costs[largest]),
                f"{smallest} mails: {ms(sync_costs[smallest])}",
                sync_costs[largest] / sync_costs[smallest],
                "flat (≤ 1.25x)",
                sync_costs[largest] / sync_costs[smallest] <= 1.25,
            )
            login = users[smallest].login
            status = self.raw(self.measure.status_round_trip, login, wan, args.repeat)
            self.row(f"one raw STATUS round trip, {where} (reference)", ms(status))
            self.idle_costs[f"sync, {where}"] = {size: cost * 1000 for size, cost in sync_costs.items()}
            self.idle_costs[f"raw check, {where}"] = {size: cost * 1000 for size, cost in raw_costs.items()}

    def match_cost(self):
        module = optional("match_cost")
        counts = self.args.contacts
        if module is None:
            for count in counts:
                self.row(f"match cost per batch, {count} contacts", report.NOT_MEASURED, goal="flat")
            return
        say(f"Match cost per batch with {', '.join(map(str, counts))} contacts")
        costs = module.measure(self.env, counts)  # {contacts: ms}
        self.env.cr.rollback()  # the contacts it added
        self.match_costs = costs
        first = costs[counts[0]]
        for count in counts:
            self.row(
                f"match cost per batch, {count} contacts",
                f"{costs[count]:.1f} ms",
                f"{counts[0]} contacts: {first:.1f} ms",
                costs[count] / first,
                "flat (≤ 1.5x)",
                costs[count] / first <= 1.5,
            )

    def peak_memory(self, config, database):
        mails, size = self.args.memory_mails, 25
        label = f"peak memory, run of {mails} mails of {size} MB"
        if not (HERE / "peak_memory.py").exists():
            self.row(label, report.NOT_MEASURED, goal="bounded")
            return
        say(label)
        self.env.cr.commit()
        # In a process of its own: it configures Odoo itself (and its memory is its own).
        child = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, str(HERE), config, database, str(mails), str(size)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        if figures["logged"] != mails:
            print(f"    warning: {figures['logged']} of {mails} mails logged", flush=True)
        growth, total = figures["peak_mb"] - figures["before_mb"], mails * size
        self.row(
            label,
            f"+{growth:.0f} MB (peak {figures['peak_mb']:.0f} MB)",
            f"the mails' size: {total} MB",
            growth / total,
            "bounded (≤ 0.2x)",
            growth <= 0.2 * total,
        )


def main(argv):
    args = arguments(argv)
    started = time.monotonic()
    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database])
    # Imports the addon, which Odoo finds once its configuration is read.
    measure = importlib.import_module("measure")

    cycle_logins = [data.address(f"m{number:04d}") for number in range(args.mailboxes)]
    scan_login, wan_login, log_login = data.address("scan"), data.address("wan"), data.address("log")
    idle_logins = {size: data.address(f"idle{size}") for size in args.idle_sizes}
    every = [*cycle_logins, scan_login, wan_login, log_login, *idle_logins.values()]
    registry = odoo.modules.registry.Registry(args.database)
    with (
        Dovecot(dict.fromkeys(every, data.PASSWORD)) as dovecot,
        LatencyProxy(dovecot.ssl_port, args.round_trip) as proxy,
        registry.cursor() as cr,
    ):
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        params = env["ir.config_parameter"].sudo()
        params.set_param("cats_mail_sync.ca_file", dovecot.ca_file)
        params.set_param("cats_mail_sync.allow_private_hosts", "True")
        params.set_param("cats_mail_sync.run_seconds", "3600")

        say("Putting mail in the mailboxes (MULTIAPPEND)")
        data.fill(dovecot, scan_login, [data.mail(n, scan_login) for n in range(args.scan_mails)])
        data.fill(dovecot, wan_login, [data.mail(n, wan_login) for n in range(args.wan_mails)])
        for size, login in idle_logins.items():
            data.fill(dovecot, login, [data.mail(n, login) for n in range(size)])
        log_raws = [
            data.mail(n, log_login, sender=data.candidate_address(n), attachment=ATTACHMENT)
            for n in range(args.log_mails)
        ]
        data.fill(dovecot, log_login, log_raws)

        say(f"Creating {args.log_mails} candidates, and {len(every)} recruiters with their mailboxes")
        # First: candidates made once mailboxes are active would have every mailbox look back for them.
        targets = data.candidates(env, args.log_mails)
        cr.commit()
        cycle_users = data.recruiters(env, dovecot, cycle_logins, proxy.port, active=False)
        port = dovecot.ssl_port
        scan_user, wan_user, log_user = data.recruiters(
            env, dovecot, [scan_login, wan_login, log_login], port, active=False, from_start=True
        )
        made = data.recruiters(env, dovecot, list(idle_logins.values()), port, active=False)
        idle_users = dict(zip(idle_logins, made, strict=True))
        # Active last: the recruiters made while a mailbox is active would be looked back for.
        data.set_state(cycle_users, "active")
        cr.commit()
        data.analyze(cr)

        bench = Bench(args, env, dovecot, proxy, measure)
        bench.idle_cycle(cycle_users)
        bench.scan(scan_user, wan=False)
        bench.scan(wan_user, wan=True)
        bench.logging(log_user, log_raws, list(targets))
        bench.idle(idle_users)
        bench.match_cost()
        bench.peak_memory(args.config, args.database)

    out = Path(args.out)
    series = str(odoo.release.version_info[0])
    for row in bench.rows:
        row.odoo = series
    table = out / "results.md"
    table.write_text(report.markdown(bench.rows, table.read_text() if table.exists() else ""))
    plot = out / f"results-odoo{series}.png"
    report.plot(
        plot,
        bench.cycle,
        bench.idle_costs,
        bench.match_costs,
        f"cats_mail_sync on Odoo {series}: {args.mailboxes} Dovecot mailboxes, "
        f"{args.round_trip * 1000:.0f} ms round trip",
    )
    print()
    print(report.text(bench.rows))
    print(
        f"\nWritten: {table} (the rows of Odoo {series}), {plot}; {time.monotonic() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
