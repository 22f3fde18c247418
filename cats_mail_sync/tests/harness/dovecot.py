"""A private Dovecot IMAP server for tests and the demo.

Started on free loopback ports with TLS only (a certificate of the run's test
CA), users from a passwd file, Maildir storage with INBOX and a \\Sent folder.
Mail is put in over IMAP APPEND, as a real mail client would.

``oauth=`` an :class:`harness.oauth_server.OAuthServer` adds sign-in with OAuth2
access tokens (SASL XOAUTH2 and OAUTHBEARER): Dovecot's own ``oauth2`` passdb
asks the server's introspection endpoint (RFC 7662, over HTTPS checked against
the test CA) whether a token is active and whose it is. Passwords stay valid
for PLAIN/LOGIN: the harness's own connections (``client``, ``append``) use
them, and every user of the OAuth server gets one (a random one unless
``users`` gives it).
"""

import getpass
import grp
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .imap_server import ImapServer
from .tls import authority

CONFIG = """\
instance_name = cats-dovecot-{instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = {uid}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login{oauth_mechanisms}
auth_failure_delay = 0
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {starttls_port}
  }}
  inet_listener imaps {{
    port = {ssl_port}
    ssl = yes
  }}
}}
{oauth_passdb}passdb {{
  driver = passwd-file
{password_mechanisms}  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
{folders}
}}
"""

# Tokens go to the oauth2 passdb only, passwords to the passwd-file one only.
OAUTH_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""

# Dovecot 2.3's oauth2 passdb (PasswordDatabase.oauth2 in dovecot-core's docs): an inactive
# token is "password mismatch" (a refused login); an introspection endpoint that fails is a
# temporary failure ("[UNAVAILABLE]").
OAUTH_CONFIG = """\
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = email
active_attribute = active
active_value = true
tls_ca_cert_file = {ca_file}
timeout_msecs = 10000
"""

FOLDER = """\
  mailbox "{name}" {{
    auto = create
{special_use}  }}
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot(ImapServer):
    """A running Dovecot; use as a context manager or call start()/stop().

    ``folders`` maps folder names to a SPECIAL-USE flag or None; by default a
    "Sent" folder marked ``\\Sent``.
    """

    name = "Dovecot"
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"

    def __init__(self, users, folders=None, cert=None, root=None, tls=None, oauth=None):
        self.users = dict(users)
        self.oauth = oauth
        if oauth is not None:
            for login in oauth.users:
                self.users.setdefault(login, secrets.token_urlsafe(18))
        self.folders = {"Sent": "\\Sent"} if folders is None else folders
        self.authority = tls or authority()
        self.cert_file, self.key_file = cert or (self.authority.cert_file, self.authority.key_file)
        self.root = Path(root or tempfile.mkdtemp(prefix="cats-dovecot-"))
        self.ssl_port = free_port()
        self.starttls_port = free_port()
        self.host = "localhost"

    def start(self):
        # Dovecot refuses to run its login and mail processes as root: as root,
        # use the unprivileged users its Debian package creates.
        if os.getuid() == 0:
            user, login_user = "dovecot", "dovenull"
            uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        else:
            user = login_user = getpass.getuser()
            uid, gid = os.getuid(), os.getgid()
        group = grp.getgrgid(gid).gr_name
        folders = "".join(
            FOLDER.format(name=name, special_use=f"    special_use = {flag}\n" if flag else "")
            for name, flag in self.folders.items()
        )
        config = CONFIG.format(
            instance=self.root.name,
            root=self.root,
            user=user,
            group=group,
            login_user=login_user,
            uid=uid,
            gid=gid,
            cert=self.cert_file,
            key=self.key_file,
            ssl_port=self.ssl_port,
            starttls_port=self.starttls_port,
            folders=folders,
            oauth_mechanisms=" xoauth2 oauthbearer" if self.oauth else "",
            oauth_passdb=OAUTH_PASSDB.format(root=self.root) if self.oauth else "",
            password_mechanisms="  mechanisms = plain login\n" if self.oauth else "",
        )
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        os.chown(self.root / "home", uid, gid)
        (self.root / "dovecot.conf").write_text(config)
        if self.oauth:
            self.write_oauth_config()
        self.write_passwd()
        # The daemon must not hold the caller's output open: it logs to dovecot.log.
        quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if subprocess.run(
            [self.binary, "-c", str(self.root / "dovecot.conf")], check=False, **quiet
        ).returncode:
            raise RuntimeError(f"Dovecot did not start; see {self.root / 'dovecot.log'}")
        self._wait_until_listening()
        return self

    def write_passwd(self):
        lines = "".join(f"{login}:{{PLAIN}}{password}::::::\n" for login, password in self.users.items())
        (self.root / "passwd").write_text(lines)

    def write_oauth_config(self):
        # The auth process may run as another user than the caller's: the CA goes next to the config.
        ca_file = self.root / "oauth-ca.pem"
        shutil.copyfile(self.oauth.ca_file, ca_file)
        user, password = self.oauth.introspection_credentials
        url = self.oauth.introspection_url.replace("https://", f"https://{user}:{password}@", 1)
        (self.root / "dovecot-oauth2.conf.ext").write_text(
            OAUTH_CONFIG.format(introspection_url=url, ca_file=ca_file)
        )

    def stop(self):
        subprocess.run(
            [self.binary, "-c", str(self.root / "dovecot.conf"), "stop"], check=False, capture_output=True
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_until_listening(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.ssl_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Dovecot did not start; see {self.root / 'dovecot.log'}")

    def mailbox_path(self, login):
        return self.root / "home" / login / "Maildir"
