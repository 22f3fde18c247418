"""A certificate authority made fresh for each run (trustme), and its files.

Servers of the harness serve a leaf certificate of this CA; clients trust it
only when they are given ``ca_file`` explicitly. The system trust store never
knows it, which is what the "untrusted certificate" tests rely on.
"""

import functools
import tempfile
from http.server import ThreadingHTTPServer
from pathlib import Path

import trustme

SERVER_NAMES = ("localhost", "127.0.0.1", "mail.example.test", "*.example.test")


class TestAuthority:
    """One CA with files on disk: ``ca_file``, ``cert_file``, ``key_file``."""

    def __init__(self, names=SERVER_NAMES, directory=None):
        self.ca = trustme.CA()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="cats-tls-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file, self.key_file = self.leaf(*names)

    def leaf(self, *names):
        """Write a leaf certificate for ``names``; return (cert path, key path)."""
        leaf = self.ca.issue_cert(*names)
        stem = names[0].replace("*", "star")
        cert_file = self.directory / f"{stem}.crt"
        key_file = self.directory / f"{stem}.key"
        with cert_file.open("wb") as out:
            for blob in leaf.cert_chain_pems:
                out.write(blob.bytes())
        leaf.private_key_pem.write_to_path(str(key_file))
        return cert_file, key_file


@functools.cache
def authority():
    """The run's shared CA (created on first use)."""
    return TestAuthority()


class HTTPSServer(ThreadingHTTPServer):
    """A threading HTTP server that speaks TLS with ``self.context`` (set by its owner)."""

    daemon_threads = True

    def finish_request(self, request, client_address):
        # The handshake runs in the request's thread, so a stalled client blocks no one.
        return super().finish_request(self.context.wrap_socket(request, server_side=True), client_address)

    def handle_error(self, request, client_address):
        # Refused handshakes and clients that gave up are what the tests provoke.
        pass
