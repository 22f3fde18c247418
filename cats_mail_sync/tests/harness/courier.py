"""A private Courier-IMAP server for tests, run from Debian's packages unpacked by scripts/imap-servers.

Started as Debian's init script starts it, with Debian's own /etc/courier/imapd and
imapd-ssl: ``couriertcpd`` listens on a free loopback port and runs, for each
connection, ``couriertls`` (implicit TLS, 1.2 or newer, a certificate of the run's
test CA), then ``imaplogin``, which asks Courier's ``authdaemond`` for the password
(its ``authuserdb`` module: a userdb built with Courier's own ``makedatprog``),
then ``imapd`` on the user's Maildir. A second ``couriertcpd``, as Debian's
/usr/lib/courier/imapd runs it, listens on ``starttls_port`` and runs ``imaplogin``
directly: plain IMAP that offers STARTTLS (imaplogin starts ``couriertls``, the same
certificate). On both, imaplogin is told TLS is required: no LOGIN or AUTHENTICATE
before it.

Courier's paths are compiled in (/etc/courier/authdaemonrc, /etc/courier/userdb.dat,
/run/courier/authdaemon/socket, and gamin's /usr/libexec/gam_server, which imapd
starts to watch Maildirs) and none can be changed: the daemons run in a mount
namespace of their own (``unshare``) where /run is this server's, and /etc and
/usr/libexec are too: links to the machine's entries, beside /etc/courier and
gam_server. They run in a PID namespace too, so that stop() ends gam_server, which
leaves imapd's session, with the rest. That takes root, and so does imapd: it
calls setgroups(), which a user namespace refuses; it runs as root, the user of
the mail in userdb.

Courier's namespace is ``INBOX.``: a folder "Sent" is listed as "INBOX.Sent"
(``sent_folder``). Courier-IMAP 5 has no SPECIAL-USE (RFC 6154): ``folders``
takes None flags only, and by default makes "Sent" without one.
"""

import base64
import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from . import debian_servers

AUTHDAEMONRC = """\
authmodulelist="authuserdb"
daemons=3
"""

# Sourced after Debian's /etc/courier/imapd and imapd-ssl, as their settings; on the STARTTLS
# port, LAUNCH gives imaplogin IMAP_TLS=0 and IMAP_STARTTLS=YES instead.
SETTINGS = {
    "SSLADDRESS": "127.0.0.1",
    "ADDRESS": "127.0.0.1",
    "IMAP_TLS": "1",  # the connection is TLS already (couriertls), not STARTTLS
    "IMAP_TLS_REQUIRED": "1",
    "IMAP_STARTTLS": "NO",
    "TLS_PRIORITY": "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
    "TLS_DHPARAMS": "",  # ECDHE only: Debian makes its DH parameters when installing
    "TLS_CACHEFILE": "",
}

# The machine's directories that this server has its own of (see write_shadow).
SHADOWED = ("/etc", "/usr/libexec")

# Run in the namespaces, with this server's folder, the unpacked tree and SHADOWED as arguments.
# What each couriertcpd runs is what Debian's /usr/lib/courier/imapd and imapd-ssl have it run,
# from the tree.
LAUNCH = """\
set -e
server=$1 unpacked=$2
shift 2
for dir in "$@"; do
    mount --bind "$dir" "$server/host$dir"
    mount --bind "$server/shadow$dir" "$dir"
done
mount --bind "$server/run" /run
set -a
. /etc/courier/imapd
. /etc/courier/imapd-ssl
. "$server/settings"
set +a
"$unpacked/usr/lib/courier/courier-authlib/authdaemond" &
until [ -S /run/courier/authdaemon/socket ]; do sleep 0.01; done
IMAP_TLS=0 IMAP_STARTTLS=YES "$unpacked/usr/sbin/couriertcpd" -address="$ADDRESS" \\
    -maxprocs="$MAXDAEMONS" -maxperip="$MAXPERIP" $TCPDOPTS "$PORT" \\
    "$unpacked/usr/lib/courier/courier/imaplogin" "$unpacked/usr/bin/imapd" "$MAILDIRPATH" &
exec "$unpacked/usr/sbin/couriertcpd" -address="$SSLADDRESS" -maxprocs="$MAXDAEMONS" \\
    -maxperip="$MAXPERIP" $TCPDOPTS "$SSLPORT" "$unpacked/usr/bin/couriertls" -server -tcpd \\
    "$unpacked/usr/lib/courier/courier/imaplogin" "$unpacked/usr/bin/imapd" "$MAILDIRPATH"
"""


class Courier(debian_servers.DebianServer):
    """A running Courier-IMAP; use as a context manager or call start()/stop().

    ``folders`` maps folder names (under INBOX.) to None; by default "Sent".
    """

    name = "Courier"

    def __init__(self, users, folders=None, cert=None, root=None, tls=None, oauth=None):
        flagged = [name for name, flag in (folders or {}).items() if flag]
        if flagged:
            raise ValueError(f"Courier-IMAP has no SPECIAL-USE: {flagged} cannot be flagged")
        if os.getuid() != 0:
            raise RuntimeError("Courier-IMAP runs as root only here (mount namespaces, setgroups)")
        super().__init__(users, folders, cert, root, tls, oauth)
        self.version = debian_servers.version("courier-imap")

    def default_folders(self):
        return {"Sent": None}

    @property
    def sent_folder(self):
        return "INBOX.Sent"

    def prepare(self):
        courier = self.root / "shadow/etc/courier"
        shutil.copytree(self.tree / "etc/courier", courier)
        (courier / "authdaemonrc").write_text(AUTHDAEMONRC)
        self.write_userdb(courier)
        # imaplogin runs couriertls for STARTTLS as the user "courier" (compiled in), whom Debian's
        # courier-base makes: here it is root by another name, as imapd runs as root.
        passwd = Path("/etc/passwd").read_text().rstrip("\n")
        (self.root / "shadow/etc/passwd").write_text(
            f"{passwd}\ncourier:x:0:0::/nonexistent:/usr/sbin/nologin\n"
        )
        (self.root / "shadow/usr/libexec").mkdir(parents=True)
        (self.root / "shadow/usr/libexec/gam_server").symlink_to(self.tree / "usr/libexec/gam_server")
        for directory in SHADOWED:
            self.write_shadow(directory)
        (self.root / "run/courier/authdaemon").mkdir(parents=True)
        # Courier reads the certificate and its key from one file, which no one else may read.
        pem = self.root / "imapd.pem"
        pem.write_bytes(self.cert_file.read_bytes() + self.key_file.read_bytes())
        pem.chmod(0o600)
        settings = SETTINGS | {
            "SSLPORT": str(self.ssl_port),
            "PORT": str(self.starttls_port),
            "TLS_CERTFILE": str(pem),
            "COURIERTLS": str(self.tree / "usr/bin/couriertls"),  # what imaplogin runs for STARTTLS
        }
        (self.root / "settings").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in settings.items()))
        for login in self.users:
            self.make_maildir(login)
        # --kill-child: when unshare ends, so does the PID namespace, with all it runs.
        command = [
            "unshare", "--mount", "--pid", "--fork", "--kill-child",
            "sh", "-c", LAUNCH, "courier", str(self.root), str(self.tree), *SHADOWED,
        ]  # fmt: skip
        env = debian_servers.environment(
            LTDL_LIBRARY_PATH=str(self.tree / "usr/lib/courier-authlib"),  # authdaemond's modules
            GAM_CLIENT_ID=self.root.name,  # a gam_server of this server's own
        )
        return command, env

    def write_shadow(self, directory):
        """This server's ``directory``: what prepare() put there, and links to the machine's other entries."""
        shadow = self.root / "shadow" / directory.lstrip("/")
        (self.root / "host" / directory.lstrip("/")).mkdir(parents=True)
        for entry in os.listdir(directory):
            if not os.path.lexists(shadow / entry):
                (shadow / entry).symlink_to(self.root / "host" / directory.lstrip("/") / entry)

    def write_userdb(self, courier):
        """userdb.dat (where each user's mail is) and userdbshadow.dat (the passwords), as makeuserdb does."""
        makedat = self.tree / "usr/lib/courier/courier-authlib/makedatprog"
        users = "".join(
            f"{login}\tuid=0|gid=0|home={self.home(login)}|mail={self.home(login)}/Maildir\n"
            for login in self.users
        )
        passwords = "".join(
            f"{login}\tsystempw={_sha256(password)}\n" for login, password in self.users.items()
        )
        env = debian_servers.environment()
        for name, lines in (("userdb", users), ("userdbshadow", passwords)):
            subprocess.run(
                [makedat, "-", courier / f"{name}.tmp", courier / f"{name}.dat"],
                input=(lines + ".\n").encode(), env=env, check=True, capture_output=True,
            )  # fmt: skip
            (courier / f"{name}.dat").chmod(0o600)

    def home(self, login):
        return self.root / "home" / login

    def make_maildir(self, login):
        """The user's Maildir with INBOX and a folder (".Name") for each of ``folders``."""
        maildir = self.home(login) / "Maildir"
        for folder in ["", *(f".{name}" for name in self.folders)]:
            for sub in ("cur", "new", "tmp"):
                (maildir / folder / sub).mkdir(parents=True, exist_ok=True)
            if folder:
                (maildir / folder / "maildirfolder").touch()


def _sha256(password):
    """A password in a form Courier's authlib checks: {SHA256} and the digest in base64."""
    return "{SHA256}" + base64.b64encode(hashlib.sha256(password.encode()).digest()).decode()
