"""What Courier-IMAP and Cyrus IMAP share: Debian's packages unpacked by scripts/imap-servers.

Their packages cannot be installed beside dovecot-imapd (all of them provide
imap-server), so scripts/imap-servers downloads them and unpacks them into one
tree, ``$CATS_IMAP_SERVERS`` or ``~/.cache/cats_mail_sync/imap-servers`` by
default: ``root/`` holds the unpacked files and ``versions`` a line
"package version" for each package unpacked there. The daemons run from that
tree, its libraries found through LD_LIBRARY_PATH.

:class:`DebianServer` starts, waits for and stops such a daemon; the rest
(``client()``, ``append()``, ``inbox``, ``sent_folder``) is :class:`harness.imap_server.ImapServer`'s,
as for :class:`harness.dovecot.Dovecot`.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .dovecot import free_port
from .imap_server import ImapServer
from .tls import authority

SERVERS = Path(os.environ.get("CATS_IMAP_SERVERS") or Path.home() / ".cache/cats_mail_sync/imap-servers")
# Where the packages put their libraries (Courier's authlib: usr/lib; libpcre3: lib/...).
LIBRARY_DIRS = ("usr/lib/x86_64-linux-gnu", "usr/lib", "lib/x86_64-linux-gnu")


def tree():
    """The unpacked packages' root, or a RuntimeError saying how to get them."""
    if not (SERVERS / "versions").is_file():
        raise RuntimeError(
            f"Courier-IMAP and Cyrus IMAP are not unpacked in {SERVERS}: run scripts/imap-servers "
            "(as root or with sudo; CATS_IMAP_SERVERS=DIR puts them elsewhere)"
        )
    return SERVERS / "root"


def version(package):
    """The upstream version of ``package`` as unpacked, e.g. "3.6.1" for 3.6.1-4+deb12u5."""
    tree()  # or say how to unpack them
    for line in (SERVERS / "versions").read_text().splitlines():
        name, _, debian_version = line.partition(" ")
        if name == package:
            return re.split(r"[+-]", debian_version.split(":")[-1])[0]
    raise RuntimeError(f"{package} is not unpacked in {SERVERS}: run scripts/imap-servers again")


def environment(unpacked=None, **variables):
    """The environment of a program of the tree (mounted at ``unpacked``, if given): ``variables`` and
    the tree's libraries."""
    libraries = [str((unpacked or tree()) / sub) for sub in LIBRARY_DIRS]
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": ":".join(libraries)} | variables


class DebianServer(ImapServer):
    """A server run from the unpacked tree; subclasses write its configuration and start it."""

    name = "server"  # for messages and the temporary folder's name

    def __init__(self, users, folders=None, cert=None, root=None, tls=None, oauth=None):
        if oauth is not None:
            raise ValueError(f"{self.name} has no OAuth2 sign-in in this harness: use Dovecot for it")
        self.tree = tree()
        self.users = dict(users)
        self.folders = self.default_folders() if folders is None else dict(folders)
        self.authority = tls or authority()
        self.cert_file, self.key_file = cert or (self.authority.cert_file, self.authority.key_file)
        self.root = Path(root or tempfile.mkdtemp(prefix=f"cats-{self.name.lower()}-"))
        self.ssl_port = free_port()
        self.starttls_port = free_port()  # plain IMAP, login only after STARTTLS
        self.host = "localhost"
        self.process = None

    def default_folders(self):
        return {"Sent": "\\Sent"}

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        command, env = self.prepare()
        # Its own session, apart from the caller's signals. The daemon must not hold the
        # caller's output open: it writes to the log.
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        try:
            listening = self._wait_until_listening()
        except BaseException:
            self.stop()
            raise
        if not listening:
            output = (self.root / "server.log").read_text(errors="replace")[-3000:]
            self.stop()  # which removes the log: its end goes into the error
            raise RuntimeError(f"{self.name} did not start; its output:\n{output}")
        return self

    def prepare(self):
        """Write the configuration under self.root; return (command, environment) of the daemon."""
        raise NotImplementedError

    def stop(self):
        if self.process is not None:
            # TERM first, as an init script would, to the daemon and every process it started
            # (some leave its process group); KILL whatever is left after 3 s.
            pids = process_tree(self.process.pid)
            _signal(pids, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while _signal(pids, 0) and time.monotonic() < deadline:
                self.process.poll()  # reaps the daemon itself
                time.sleep(0.02)
            _signal(pids, signal.SIGKILL)
            self.process.wait()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_until_listening(self):
        """Whether the daemon listens on both ports within 10 s (False as soon as it ends)."""
        deadline = time.monotonic() + 10
        waiting = [self.ssl_port, self.starttls_port]
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=1).close()
                waiting.pop(0)
                if not waiting:
                    return True
            except OSError:
                time.sleep(0.02)
        return False


def process_tree(pid):
    """``pid`` and the processes descending from it (their parents' ids as /proc has them)."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            continue  # not a process, or one that just ended
    found = [pid]
    for parent in found:  # grows as children are found
        found += [child for child, its_parent in parents.items() if its_parent == parent]
    return found


def _signal(pids, sig):
    """Send ``sig`` to each of ``pids``; whether any of them was still there."""
    alive = False
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # ended already
            os.kill(pid, sig)
            alive = True
    return alive
