"""A private Cyrus IMAP server for tests, run from Debian's packages unpacked by scripts/imap-servers.

Cyrus's ``master`` (its -C and -M name this server's imapd.conf and cyrus.conf)
runs ``imapd -s`` (implicit TLS, 1.2 or newer, a certificate of the run's test CA)
on a free loopback port, and ``imapd`` on another (``starttls_port``): plain IMAP that
offers STARTTLS, with the same certificate. Neither takes LOGIN or AUTHENTICATE
before TLS: ``allowplaintext: no``, and PLAIN and LOGIN are the only mechanisms
(``sasl_mech_list``, as Dovecot's auth_mechanisms; CRAM-MD5 or SCRAM would sign in
without TLS).
Passwords are in a sasldb of its own, written by Cyrus SASL's ``saslpasswd2``;
a failed login is answered at once (``failedloginpause: 0``, as Dovecot's
auth_failure_delay = 0). Cyrus logs to syslog only.

Cyrus's imapd refuses to run as root ("must run as the Cyrus user"): as root,
master drops to ``nobody`` (``cyrus_user``), who owns this server's files. The
unpacked tree may be where nobody cannot go (under /root): as root, master runs
in a mount namespace of its own (``unshare``) where the tree is also mounted in
this server's folder, and in a PID namespace that ends with it. As another user,
Cyrus runs as that user, from the tree where it is.

The alternate namespace is on (``altnamespace``), so folders sit beside INBOX:
"Sent", not "INBOX/Sent". A user's INBOX and ``folders`` are made by Cyrus itself
at the user's first login (``autocreate_inbox_folders``), with their special-use
flag (``xlist-sent: Sent`` and the like), which Cyrus writes in lower case: LIST
answers ``\\sent``. Logins are addresses: with ``virtdomains: userid``,
"carl@example.test" is user carl of domain example.test.
"""

import os
import pwd
import shutil
import subprocess

from . import debian_servers

IMAPD_CONF = """\
configdirectory: {root}/lib
partition-default: {root}/spool
sievedir: {root}/sieve
cyrus_user: {user}
servername: localhost
altnamespace: yes
unixhierarchysep: yes
virtdomains: userid
allowplaintext: no
sasl_mech_list: PLAIN LOGIN
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {root}/sasldb2
tls_server_cert: {root}/server.crt
tls_server_key: {root}/server.key
tls_versions: tls1_2 tls1_3
autocreate_quota: 0
failedloginpause: 0
# A folder flagged \\Sent may be deleted (the tests rebuild folders to renumber them).
specialuse_protect: 0
"""

# Debian's cyrus.conf recovers the databases at each start; imaps and imap (STARTTLS) are
# the only services.
CYRUS_CONF = """\
START {{
  recover cmd="{bin}/ctl_cyrusdb -r -C {root}/imapd.conf"
}}
SERVICES {{
  imaps cmd="{bin}/imapd -s -C {root}/imapd.conf" listen="127.0.0.1:{port}" prefork=0
  imap cmd="{bin}/imapd -C {root}/imapd.conf" listen="127.0.0.1:{starttls_port}" prefork=0
}}
"""

# Run as root in the mount namespace: $1 the unpacked tree, $2 where it is mounted; then the command.
LAUNCH = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'


class Cyrus(debian_servers.DebianServer):
    """A running Cyrus IMAP; use as a context manager or call start()/stop().

    ``folders`` maps folder names to a SPECIAL-USE flag or None; by default a
    "Sent" folder marked ``\\Sent``.
    """

    name = "Cyrus"

    def __init__(self, users, folders=None, cert=None, root=None, tls=None, oauth=None):
        super().__init__(users, folders, cert, root, tls, oauth)
        self.version = debian_servers.version("cyrus-imapd")

    def prepare(self):
        as_root = os.getuid() == 0
        user = "nobody" if as_root else pwd.getpwuid(os.getuid()).pw_name
        unpacked = self.root / "tree" if as_root else self.tree
        bin_dir = unpacked / "usr/lib/cyrus/bin"
        for sub in ("lib/db", "lib/socket", "spool", "sieve", *(["tree"] if as_root else [])):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.cert_file, self.root / "server.crt")
        shutil.copyfile(self.key_file, self.root / "server.key")
        (self.root / "server.key").chmod(0o600)
        (self.root / "imapd.conf").write_text(
            IMAPD_CONF.format(root=self.root, user=user) + self.folder_options()
        )
        (self.root / "cyrus.conf").write_text(
            CYRUS_CONF.format(
                bin=bin_dir, root=self.root, port=self.ssl_port, starttls_port=self.starttls_port
            )
        )
        self.write_sasldb()
        if as_root:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        command = [
            bin_dir / "master", "-C", self.root / "imapd.conf", "-M", self.root / "cyrus.conf",
            "-p", self.root / "master.pid",
        ]  # fmt: skip
        if as_root:
            # --kill-child: when unshare ends, so does the PID namespace, with all it runs.
            namespaces = ["--mount", "--pid", "--fork", "--kill-child"]
            command = ["unshare", *namespaces, "sh", "-c", LAUNCH, "cyrus", self.tree, unpacked, *command]
        return [str(part) for part in command], debian_servers.environment(unpacked)

    def folder_options(self):
        """The folders made with each INBOX; xlist-sent: Sent gives Sent the flag \\Sent."""
        if not self.folders:
            return ""
        lines = [f"autocreate_inbox_folders: {' | '.join(self.folders)}\n"]
        lines += [f"xlist-{flag[1:]}: {name}\n" for name, flag in self.folders.items() if flag]
        return "".join(lines)

    def write_sasldb(self):
        """Each user's password, with saslpasswd2; "carl@example.test" is user carl of realm example.test."""
        saslpasswd = self.tree / "usr/sbin/saslpasswd2"
        for login, password in self.users.items():
            user, _, realm = login.rpartition("@") if "@" in login else (login, "", "localhost")
            subprocess.run(
                [saslpasswd, "-f", self.root / "sasldb2", "-c", "-p", "-u", realm, user],
                input=password.encode(), env=debian_servers.environment(), check=True, capture_output=True,
            )  # fmt: skip
