# Shared by scripts/* and bench/run: system packages, Python packages, and Odoo (18 or 19).
# Odoo itself is not installed here: bring your own (see README) and point ODOO_PYTHON,
# PYTHONPATH or ODOO_ADDONS_PATH at it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${ODOO_PYTHON:-python3}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: Dovecot (the IMAP server of the tests and the demo) and, for
# the browser tests, Chromium.
install_system_packages() {
    local missing=()
    command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
    if [ "${1:-}" = browser ]; then
        command -v chromium >/dev/null || missing+=(chromium)
    fi
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "please install: ${missing[*]} (Debian/Ubuntu package names)"
    say "Installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
    say "Installing Python packages (requirements-test.txt)"
    "$PYTHON" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-test.txt"
}

# Fails loudly when Odoo 18 or 19 cannot be imported: tests never turn into skips. Sets
# ODOO_SERIES (18 or 19).
find_odoo() {
    ODOO_SERIES=$("$PYTHON" -c 'import odoo.release as r; print(r.version_info[0])' 2>/dev/null) ||
        die "Odoo cannot be imported by $PYTHON. Install Odoo 18 or 19 into it (e.g. 'pip install -e /path/to/odoo')
       or set PYTHONPATH=/path/to/odoo, or ODOO_PYTHON=/path/to/odoo/venv/bin/python. See README."
    # Demo data: Odoo 18 loads it unless told not to, 19 only when asked for.
    case $ODOO_SERIES in
        18) WITH_DEMO=() WITHOUT_DEMO=(--without-demo=all) ;;
        19) WITH_DEMO=(--with-demo) WITHOUT_DEMO=() ;;
        *) die "Odoo $ODOO_SERIES found by $PYTHON, cats_mail_sync needs Odoo 18 or 19" ;;
    esac
    local core_addons
    core_addons=$("$PYTHON" -c 'import odoo.addons, os; print(os.pathsep.join(p for p in odoo.addons.__path__ if os.path.isdir(os.path.join(p, "mail"))))')
    [ -n "$core_addons" ] || [ -n "${ODOO_ADDONS_PATH:-}" ] || die "Odoo's addons (mail, hr_recruitment) not found: set ODOO_ADDONS_PATH"
    # Odoo's own addons (what a server without this repository has), then with it.
    CORE_ADDONS_PATH="${ODOO_ADDONS_PATH:-$core_addons}"
    CORE_ADDONS_PATH=${CORE_ADDONS_PATH//:/,}
    ADDONS_PATH="$CORE_ADDONS_PATH,$ROOT"
    # The directory holding the odoo package (a checkout, or site-packages).
    ODOO_SRC=$("$PYTHON" -c 'import odoo, os; print(os.path.dirname(os.path.abspath(list(odoo.__path__)[0])))')
}

# An Odoo configuration file for database $2 (PostgreSQL from PGHOST/PGPORT/PGUSER/PGPASSWORD),
# with addons path $3 (default: Odoo's addons and this repository).
write_odoo_config() {
    local config=$1 db=$2 addons_path=${3:-$ADDONS_PATH}
    {
        echo "[options]"
        echo "addons_path = $addons_path"
        echo "db_name = $db"
        [ -n "${PGHOST:-}" ] && echo "db_host = $PGHOST"
        [ -n "${PGPORT:-}" ] && echo "db_port = $PGPORT"
        [ -n "${PGUSER:-}" ] && echo "db_user = $PGUSER"
        [ -n "${PGPASSWORD:-}" ] && echo "db_password = $PGPASSWORD"
        echo "list_db = False"
    } > "$config"
}

drop_database() {
    "$PYTHON" -m odoo db -c "$1" drop "$2" >/dev/null 2>&1 || true
}

# A fresh database $2 with cats_mail_sync installed; extra odoo arguments follow.
create_database() {
    local config=$1 db=$2; shift 2
    drop_database "$config" "$db"
    say "Creating database $db with cats_mail_sync (a minute or two)"
    "$PYTHON" -m odoo -c "$config" -d "$db" -i cats_mail_sync --stop-after-init --log-level=warn "$@" ||
        die "installing cats_mail_sync into $db failed"
}

# A free TCP port on loopback (for the HTTP server of Odoo's test runs).
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Reads the log of an Odoo test run (`odoo ... --test-enable --stop-after-init`, log level
# info) and fails unless it ran cleanly. Odoo 18 closes such a run with
#   INFO|ERROR <db> odoo.tests.result: F failed, E error(s) of N tests when loading database 'db'
# (odoo/service/server.py, odoo/tests/result.py), logs "Starting Class.method ..." for each test
# and "skipped Class.method : reason" for each skip at INFO under the test module's logger
# (odoo.addons.<module>.tests.<file>; odoo.tests.suite for a class skipped in setUpClass), and
# each failure as an ERROR "FAIL: ..." / "ERROR: ..." line followed by its traceback. Usage:
#   odoo_test_report LOG EXIT_CODE [--require MODULE]... [--no-skips] [--counts FILE]
# Fails when Odoo exited non-zero or wrote no closing line, when a test failed or erred, when a
# --require'd module ran no test, or (--no-skips) when a test was skipped. --counts appends
# "passed failed" to FILE.
odoo_test_report() {
    "$PYTHON" - "$@" <<'PY'
import argparse
import collections
import re
import sys

parser = argparse.ArgumentParser()
parser.add_argument("log")
parser.add_argument("rc", type=int)
parser.add_argument("--require", action="append", default=[])
parser.add_argument("--no-skips", action="store_true")
parser.add_argument("--counts")
args = parser.parse_args()

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ (?P<level>[A-Z]+) \S+ (?P<logger>\S+): (?P<msg>.*)$")
SUMMARY = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests when loading database")
TEST_LOGGER = re.compile(r"^odoo\.addons\.(\w+)\.tests\b")

lines = open(args.log, encoding="utf-8", errors="replace").read().splitlines()
ran = collections.Counter()
skips, failures, other_errors, summary = [], [], [], None
current = None  # the failure whose traceback follows
for line in lines:
    record = RECORD.match(line)
    if not record:
        if current is not None and len(current) < 40:
            current.append(line)
        continue
    current = None
    level, logger, msg = record["level"], record["logger"], record["msg"].rstrip()
    module = TEST_LOGGER.match(logger)
    if module and level == "INFO" and msg.startswith("Starting "):
        ran[module[1]] += 1
    elif level == "INFO" and msg.startswith("skipped ") and (module or logger == "odoo.tests.suite"):
        # A skip in setUpClass is logged by odoo.tests.suite, naming the class.
        module = module or re.search(r"odoo\.addons\.(\w+)\.tests\b", msg)
        skips.append(f"{module[1] if module else '?'}: {msg}")
    elif logger == "odoo.tests.result" and SUMMARY.search(msg):
        summary = [int(n) for n in SUMMARY.search(msg).groups()]
    elif level in ("ERROR", "CRITICAL") and re.match(r"(FAIL|ERROR): ", msg):
        current = [line]
        failures.append(current)
    elif level in ("ERROR", "CRITICAL"):
        other_errors.append(line)

problems = []
if summary is None:
    problems.append("Odoo wrote no test summary (it stopped before its tests ended?):")
    problems.extend("    " + line for line in lines[-30:])
    failed = errors = total = 0
else:
    failed, errors, total = summary
per_module = ", ".join(f"{module} {count}" for module, count in sorted(ran.items())) or "none"
print(f"Odoo: {total} tests ({per_module}), {failed} failed, {errors} error(s), {len(skips)} skipped")
for skip in skips:
    print("  skipped:", skip)
for failure in failures:
    print("\n".join(failure))
if failed or errors:
    problems.append(f"{failed} failed, {errors} error(s)")
if other_errors:
    # Logged by the code under test or by Odoo itself: shown, they fail nothing by themselves.
    print(f"{len(other_errors)} other ERROR line(s) in the log, the first ones:")
    for line in other_errors[:10]:
        print("  " + line[:300])
for module in args.require:
    if not ran[module]:
        problems.append(f"no test of {module} ran")
if args.no_skips and skips:
    problems.append(f"{len(skips)} test(s) skipped: skipped tests count as failures here")
if args.rc and not problems:
    problems.append(f"Odoo exited with status {args.rc}")
if args.counts:
    with open(args.counts, "a") as counts:
        counts.write(f"{max(total - failed - errors, 0)} {failed + errors}\n")
if problems:
    print("error: " + "\n".join(problems), file=sys.stderr)
    sys.exit(1)
PY
}

# Runs Odoo's test runner: odoo_test_run LOG ODOO-ARGUMENTS... (output in LOG; exit status
# left in ODOO_RC). From $WORK, never from the repository: `python -m odoo` puts its
# working directory on sys.path, and the addon must not need anything beside itself.
odoo_test_run() {
    local log=$1; shift
    ODOO_RC=0
    (cd "$WORK" && "$PYTHON" -m odoo "$@" --test-enable --stop-after-init --log-level=info \
        --http-port="$(free_port)") >"$log" 2>&1 || ODOO_RC=$?
}
