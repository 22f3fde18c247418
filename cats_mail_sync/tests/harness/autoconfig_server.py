"""An HTTPS server on 127.0.0.1 serving fixed answers, for autoconfig tests.

    routes = {"/mail/config-v1.1.xml": (200, xml), "/slow": (200, xml, 10)}
    with AutoconfigServer(routes) as web:
        web.port, web.requests

A route is ``path: (status, body)`` or ``(status, body, delay)``: the answer is
held back ``delay`` seconds (the wait ends when the server closes). The query
string is ignored for routing; unknown paths get 404. ``requests`` lists
(Host header, full path) in arrival order. The certificate comes from the run's
test CA (``harness.tls.authority()``) for ``names`` (default: its usual leaf,
which covers ``*.example.test``); pass another ``TestAuthority`` to serve an
untrusted one.
"""

import ssl
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from .tls import HTTPSServer
from .tls import authority as run_authority


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append((self.headers.get("Host"), self.path))
        status, body, *delay = server.routes.get(urlsplit(self.path).path, (404, "not found"))
        if delay and server.closing.wait(delay[0]):
            return
        body = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class AutoconfigServer:
    def __init__(self, routes, *, names=None, authority=None):
        authority = authority or run_authority()
        cert_file, key_file = authority.leaf(*names) if names else (authority.cert_file, authority.key_file)
        self.server = HTTPSServer(("127.0.0.1", 0), _Handler)
        self.server.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server.context.load_cert_chain(cert_file, key_file)
        self.server.routes = routes
        self.server.requests = self.requests = []
        self.server.closing = threading.Event()
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.closing.set()
        self.server.shutdown()
        self.server.server_close()
