# Shared by scripts/test and scripts/demo: system packages, Python packages, and Odoo 18.
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

# Fails loudly when Odoo 18 cannot be imported: tests never turn into skips.
find_odoo() {
    local version
    version=$("$PYTHON" -c 'import odoo.release as r; print(r.version_info[0])' 2>/dev/null) ||
        die "Odoo cannot be imported by $PYTHON. Install Odoo 18 into it (e.g. 'pip install -e /path/to/odoo')
       or set PYTHONPATH=/path/to/odoo, or ODOO_PYTHON=/path/to/odoo/venv/bin/python. See README."
    [ "$version" = 18 ] || die "Odoo $version found, cats_mail_sync needs Odoo 18"
    local core_addons
    core_addons=$("$PYTHON" -c 'import odoo.addons, os; print(os.pathsep.join(p for p in odoo.addons.__path__ if os.path.isdir(os.path.join(p, "mail"))))')
    [ -n "$core_addons" ] || [ -n "${ODOO_ADDONS_PATH:-}" ] || die "Odoo's addons (mail, hr_recruitment) not found: set ODOO_ADDONS_PATH"
    ADDONS_PATH="${ODOO_ADDONS_PATH:-$core_addons},$ROOT"
    ADDONS_PATH=${ADDONS_PATH//:/,}
}

# An Odoo configuration file for database $1 (PostgreSQL from PGHOST/PGPORT/PGUSER/PGPASSWORD).
write_odoo_config() {
    local config=$1 db=$2
    {
        echo "[options]"
        echo "addons_path = $ADDONS_PATH"
        echo "db_name = $db"
        [ -n "${PGHOST:-}" ] && echo "db_host = $PGHOST"
        [ -n "${PGPORT:-}" ] && echo "db_port = $PGPORT"
        [ -n "${PGUSER:-}" ] && echo "db_user = $PGUSER"
        [ -n "${PGPASSWORD:-}" ] && echo "db_password = $PGPASSWORD"
        echo "list_db = False"
    } > "$config"
}

# A fresh database $2 with cats_mail_sync installed; extra odoo arguments follow.
create_database() {
    local config=$1 db=$2; shift 2
    "$PYTHON" -m odoo db -c "$config" drop "$db" >/dev/null 2>&1 || true
    say "Creating database $db with cats_mail_sync (a minute or two)"
    "$PYTHON" -m odoo -c "$config" -d "$db" -i cats_mail_sync --stop-after-init --log-level=warn "$@" ||
        die "installing cats_mail_sync into $db failed"
}
