"""A small OAuth2 authorization server for tests: HTTPS on 127.0.0.1, stdlib only.

    with OAuthServer({"anna@recruit.example.test": {"name": "Anna"}}) as oauth:
        oauth.authorize_url, oauth.token_url, oauth.client_id, oauth.client_secret
        oauth.requests  # every request, in arrival order

It plays Microsoft's or Google's identity platform for the mailbox sign-in: the
authorization code flow with PKCE, refresh tokens, and what a mail server needs
to check an access token (RFC 7662 introspection, used by Dovecot's oauth2 passdb).
The certificate is a leaf of the run's test CA (:func:`harness.tls.authority`),
valid for 127.0.0.1 and localhost; give clients ``ca_file``.

Endpoints (``base_url`` + path; ``url(path)`` builds them):

``GET /authorize``
    ``client_id``, ``redirect_uri``, ``response_type=code``, ``scope``, ``state``,
    ``code_challenge``, ``code_challenge_method=S256`` (PKCE is required), optional
    ``login_hint`` and ``nonce``. An unknown client or a redirect URI not registered
    (``redirect_uris``) gets a 400 page, as RFC 6749 says; other errors go back to
    the client (``?error=...&state=...``). The user is ``login_hint`` (an unknown one
    gets ``error=access_denied``), else ``default_user`` (default: the first user).
    With ``auto_approve=True`` (the default) the answer is at once a 302 to
    ``redirect_uri?code=...&state=...``; with False it is a consent page: an HTML form
    (``#allow`` / ``#deny`` buttons) posting to ``POST /authorize/approve``, which
    redirects (303) with the code or with ``error=access_denied``.
``POST /token``
    Client authentication by ``client_id``/``client_secret`` in the form (or HTTP
    Basic); a wrong one is 401 ``invalid_client``. ``grant_type=authorization_code``
    checks ``code`` (single use, valid ``code_ttl`` seconds; a refused exchange uses
    it up too), ``redirect_uri`` (the one of the authorization) and ``code_verifier``
    (S256). A code used twice is refused and the tokens it gave are revoked (RFC 6749
    4.1.2).
    ``grant_type=refresh_token`` rotates: the answer holds a new refresh token and
    the old one is refused from then on (``rotate_refresh_tokens=False``: the same
    refresh token stays valid and none is returned, like Google). Refused codes and
    tokens (unknown, used, expired, revoked, another client's) get 400 ``invalid_grant``.
    Success: ``access_token``, ``token_type`` "Bearer", ``expires_in`` (``expires_in``
    seconds), ``refresh_token``, ``scope`` and ``id_token``: a JWT with ``iss``,
    ``sub``, ``aud`` (client_id), ``email``, ``email_verified``, ``iat``, ``exp``,
    ``nonce`` (if one was given) and the user's extra claims, signed HS256 with the
    client secret (OpenID Connect's choice for confidential clients); see
    :func:`jwt_claims`.
``GET /userinfo``
    ``Authorization: Bearer <access token>`` -> ``{"sub", "email", ...}``, or 401.
``POST /introspect``
    RFC 7662, ``token=...``, HTTP Basic authentication with ``introspection_credentials``
    (what a mail server holds) or a client's credentials. Only access tokens are ever
    active: ``{"active": true, "email", "username", "sub", "scope", "client_id",
    "token_type": "Bearer", "exp", "iat"}``; anything else ``{"active": false}``.
``POST /revoke``
    RFC 7009, ``token=...`` with client authentication. Revoking a refresh token
    revokes the access tokens it gave. Always 200 for a known client.
``GET /.well-known/openid-configuration``
    The endpoints, as discovery metadata.

Control from the test: ``revoke(user)`` (every code and token of the user),
``expire(user=None)`` (access tokens only: refresh still works), ``advance(seconds)``
(the server's clock; codes and tokens expire by it, no test needs to sleep),
``issue(user)`` (a token set without the browser dance), ``active(token)``,
``introspect(token)`` (the introspection answer as a dict; used by the SMTP server).

Tokens and codes are opaque random strings (no dots: Dovecot never mistakes them
for JWTs). ``requests`` records every request as an :class:`OAuthRequest`.
"""

import base64
import hashlib
import hmac
import html
import itertools
import json
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .tls import HTTPSServer
from .tls import authority as run_authority

HOST = "127.0.0.1"
DEFAULT_SCOPE = "openid email offline_access mail"
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


@dataclass(frozen=True)
class OAuthRequest:
    """One request the server got: method, path (no query), parameters (query or form), headers."""

    method: str
    path: str
    params: dict
    headers: dict


@dataclass
class _Grant:
    """What a user allowed a client: the codes, refresh and access tokens it led to share it."""

    user: str
    client_id: str
    scope: str
    nonce: str = None
    revoked: bool = False
    tokens: list = field(default_factory=list)


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str
    challenge: str
    expires_at: float
    used: bool = False


@dataclass
class _Token:
    kind: str  # "access" or "refresh"
    grant: _Grant
    expires_at: float = None  # None: no expiry (refresh tokens)
    revoked: bool = False


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_challenge(verifier):
    """The S256 code challenge of ``verifier`` (RFC 7636)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def make_jwt(claims, key=None):
    """A compact JWT: HS256 with ``key`` (str or bytes), or unsigned (``alg: none``) without."""
    header = {"alg": "HS256" if key else "none", "typ": "JWT"}
    signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = ""
    if key:
        key = key.encode() if isinstance(key, str) else key
        signature = _b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def jwt_claims(token, key=None):
    """The claims of a JWT from :func:`make_jwt`; with ``key``, the HS256 signature must match."""
    signing_input, _, signature = token.rpartition(".")
    header, payload = (
        json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        for part in signing_input.split(".")
    )
    if key is not None:
        key = key.encode() if isinstance(key, str) else key
        expected = _b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
        if header.get("alg") != "HS256" or not hmac.compare_digest(signature, expected):
            raise ValueError("bad JWT signature")
    return payload


class _Handler(BaseHTTPRequestHandler):
    server_version = "cats-test-oauth/1"

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        oauth = self.server.oauth
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            params.update(parse_qsl(body, keep_blank_values=True))
        oauth.requests.append(OAuthRequest(method, parts.path, params, dict(self.headers.items())))
        route = oauth.routes.get((method, parts.path))
        if route is None:
            self._send(404, {"error": "not_found"})
            return
        status, body, *headers = route(params, self.headers)
        self._send(status, body, *headers)

    def _send(self, status, body, headers=None):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        body = (body or "").encode()
        headers.setdefault("Content-Type", "text/html; charset=utf-8")
        headers.setdefault("Cache-Control", "no-store")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class OAuthServer:
    """The server; a context manager (or ``start()``/``stop()``) running in a thread."""

    def __init__(
        self,
        users,
        *,
        client_id="cats-mail-sync-test",
        client_secret=None,
        clients=None,
        redirect_uris=None,
        default_user=None,
        auto_approve=True,
        expires_in=3600,
        code_ttl=60,
        rotate_refresh_tokens=True,
        default_scope=DEFAULT_SCOPE,
        authority=None,
    ):
        """``users``: ``{email: {extra claims}}`` (or a list of emails).

        ``clients`` adds ``{client_id: secret}`` to the main client; a secret of None
        is a public client (no client authentication; PKCE still required).
        ``redirect_uris``: the registered ones (None: any redirect URI is accepted).
        """
        self.users = {user: {} for user in users} if not isinstance(users, dict) else dict(users)
        self.client_id = client_id
        self.client_secret = secrets.token_urlsafe(24) if client_secret is None else client_secret
        self.clients = {client_id: self.client_secret, **(clients or {})}
        self.redirect_uris = None if redirect_uris is None else set(redirect_uris)
        self.default_user = default_user or next(iter(self.users), None)
        self.auto_approve = auto_approve
        self.expires_in = expires_in
        self.code_ttl = code_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.default_scope = default_scope
        # What a resource server (Dovecot) presents at /introspect; URL-safe characters only.
        self.introspection_credentials = ("mail-server", secrets.token_urlsafe(18))
        self.requests = []
        self._offset = 0.0
        self._lock = threading.RLock()
        self._codes = {}
        self._tokens = {}
        self._consents = {}
        self._grants = []
        self._subjects = {user: f"sub-{n}" for n, user in enumerate(self.users, 1)}
        self._counter = itertools.count(len(self.users) + 1)

        authority = authority or run_authority()
        self.ca_file = str(authority.ca_file)
        self._server = HTTPSServer((HOST, 0), _Handler)
        self._server.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.context.load_cert_chain(authority.cert_file, authority.key_file)
        self._server.oauth = self
        self.port = self._server.server_address[1]
        self.base_url = f"https://{HOST}:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self.routes = {
            ("GET", "/authorize"): self._authorize,
            ("POST", "/authorize/approve"): self._approve,
            ("POST", "/token"): self._token,
            ("GET", "/userinfo"): self._userinfo,
            ("POST", "/introspect"): self._introspect,
            ("POST", "/revoke"): self._revoke,
            ("GET", "/.well-known/openid-configuration"): self._metadata,
        }

    # -- URLs ----------------------------------------------------------------

    def url(self, path):
        return self.base_url + path.lstrip("/")

    @property
    def authorize_url(self):
        return self.url("authorize")

    @property
    def token_url(self):
        return self.url("token")

    @property
    def userinfo_url(self):
        return self.url("userinfo")

    @property
    def introspection_url(self):
        return self.url("introspect")

    @property
    def revocation_url(self):
        return self.url("revoke")

    def ssl_context(self):
        """A client TLS context that trusts this server's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=self.ca_file)

    # -- life ----------------------------------------------------------------

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which must have started
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- control from tests --------------------------------------------------

    def now(self):
        return time.time() + self._offset

    def advance(self, seconds):
        """Move the server's clock forward: codes and access tokens expire by it."""
        with self._lock:
            self._offset += seconds

    def revoke(self, user):
        """Revoke every pending code, refresh and access token of ``user``."""
        with self._lock:
            for grant in self._grants:
                if grant.user == user:
                    self._revoke_grant(grant)

    def expire(self, user=None):
        """Make the access tokens (of ``user``, or all) expired now; refresh tokens stay valid."""
        with self._lock:
            for token in self._tokens.values():
                if token.kind == "access" and (user is None or token.grant.user == user):
                    token.expires_at = min(token.expires_at, self.now() - 1)

    def issue(self, user, scope=None, client_id=None):
        """A token set for ``user`` as the token endpoint would answer it (no browser involved)."""
        with self._lock:
            grant = self._new_grant(user, client_id or self.client_id, scope or self.default_scope)
            return self._token_response(grant)

    def active(self, token):
        """Whether ``token`` is a valid access token now."""
        return self.introspect(token)["active"]

    def introspect(self, token):
        """The introspection answer for ``token`` (what ``POST /introspect`` returns)."""
        with self._lock:
            record = self._tokens.get(token or "")
            if record is None or record.kind != "access" or not self._valid(record):
                return {"active": False}
            grant = record.grant
            return {
                "active": True,
                "email": grant.user,
                "username": grant.user,
                "sub": self._subjects[grant.user],
                "scope": grant.scope,
                "client_id": grant.client_id,
                "token_type": "Bearer",
                "exp": int(record.expires_at),
                "iat": int(record.expires_at - self.expires_in),
            }

    # -- internals -----------------------------------------------------------

    def _valid(self, record):
        if record.revoked or record.grant.revoked:
            return False
        return record.expires_at is None or self.now() < record.expires_at

    def _new_grant(self, user, client_id, scope, nonce=None):
        if user not in self.users:
            raise KeyError(user)
        grant = _Grant(user=user, client_id=client_id, scope=scope, nonce=nonce)
        self._grants.append(grant)
        return grant

    def _revoke_grant(self, grant):
        grant.revoked = True
        for token in grant.tokens:
            token.revoked = True

    def _new_token(self, kind, grant, lifetime=None):
        value = f"{kind[0]}t-{next(self._counter)}-{secrets.token_urlsafe(32)}"
        record = _Token(kind, grant, None if lifetime is None else self.now() + lifetime)
        self._tokens[value] = record
        grant.tokens.append(record)
        return value

    def _token_response(self, grant, refresh_token=None):
        """Issue an access token (and a refresh token unless ``refresh_token`` is kept)."""
        now = int(self.now())
        claims = {
            "iss": self.base_url.rstrip("/"),
            "sub": self._subjects[grant.user],
            "aud": grant.client_id,
            "email": grant.user,
            "email_verified": True,
            "iat": now,
            "exp": now + self.expires_in,
            **self.users[grant.user],
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        response = {
            "access_token": self._new_token("access", grant, self.expires_in),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": grant.scope,
            "id_token": make_jwt(claims, self.clients.get(grant.client_id)),
        }
        if refresh_token is None:
            response["refresh_token"] = self._new_token("refresh", grant)
        return response

    def _redirect(self, redirect_uri, status=302, **params):
        parts = urlsplit(redirect_uri)
        query = "&".join(filter(None, [parts.query, urlencode({k: v for k, v in params.items() if v})]))
        return status, "", {"Location": urlunsplit(parts._replace(query=query))}

    def _client(self, params, headers):
        """The authenticated client_id, or None (form credentials, else HTTP Basic)."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        basic = _basic(headers)
        if basic and not secret:
            client_id, secret = basic
        if client_id not in self.clients:
            return None
        expected = self.clients[client_id]
        if expected is None:  # a public client
            return client_id
        if secret is None or not hmac.compare_digest(secret.encode(), expected.encode()):
            return None
        return client_id

    # -- endpoints -----------------------------------------------------------

    def _authorize(self, params, headers):
        client_id, redirect_uri = params.get("client_id"), params.get("redirect_uri")
        if client_id not in self.clients:
            return 400, "<h1>Unknown application (client_id)</h1>"
        if not redirect_uri or (self.redirect_uris is not None and redirect_uri not in self.redirect_uris):
            return 400, "<h1>The redirect URI is not registered for this application</h1>"
        state = params.get("state")
        if params.get("response_type") != "code":
            return self._redirect(redirect_uri, error="unsupported_response_type", state=state)
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return self._redirect(
                redirect_uri, error="invalid_request", error_description="PKCE S256 required", state=state
            )
        user = params.get("login_hint") or self.default_user
        if user not in self.users:
            return self._redirect(redirect_uri, error="access_denied", state=state)
        request = {
            "user": user,
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": params.get("scope") or self.default_scope,
            "state": state,
            "challenge": params["code_challenge"],
            "nonce": params.get("nonce"),
        }
        with self._lock:
            if self.auto_approve:
                return self._issue_code(request)
            ticket = secrets.token_urlsafe(16)
            self._consents[ticket] = request
        return 200, _CONSENT.format(
            client=html.escape(client_id),
            user=html.escape(user),
            scope=html.escape(request["scope"]),
            ticket=ticket,
        )

    def _issue_code(self, request, status=302):
        grant = self._new_grant(request["user"], request["client_id"], request["scope"], request["nonce"])
        code = f"code-{next(self._counter)}-{secrets.token_urlsafe(24)}"
        self._codes[code] = _Code(
            grant, request["redirect_uri"], request["challenge"], self.now() + self.code_ttl
        )
        return self._redirect(request["redirect_uri"], status, code=code, state=request["state"])

    def _approve(self, params, headers):
        with self._lock:
            request = self._consents.pop(params.get("ticket", ""), None)
            if request is None:
                return 400, "<h1>This sign-in request has expired; start again.</h1>"
            if params.get("decision") != "allow":
                return self._redirect(
                    request["redirect_uri"], 303, error="access_denied", state=request["state"]
                )
            return self._issue_code(request, 303)

    def _token(self, params, headers):
        client_id = self._client(params, headers)
        if client_id is None:
            return 401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="token"'}
        grant_type = params.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                return self._code_grant(client_id, params)
            if grant_type == "refresh_token":
                return self._refresh_grant(client_id, params)
        return 400, {"error": "unsupported_grant_type"}

    def _code_grant(self, client_id, params):
        code = self._codes.get(params.get("code", ""))
        if code is None:
            return _invalid_grant("unknown authorization code")
        if code.used:
            # A code used twice: revoke what it gave (RFC 6749 4.1.2).
            self._revoke_grant(code.grant)
            return _invalid_grant("authorization code already used")
        code.used = True
        verifier = params.get("code_verifier") or ""
        problem = (
            (code.grant.revoked and "authorization revoked")
            or (self.now() >= code.expires_at and "authorization code expired")
            or (code.grant.client_id != client_id and "authorization code of another client")
            or (params.get("redirect_uri") != code.redirect_uri and "redirect_uri does not match")
            or (
                not (_VERIFIER.fullmatch(verifier) and pkce_challenge(verifier) == code.challenge)
                and "PKCE verification failed"
            )
        )
        if problem:
            return _invalid_grant(problem)
        return 200, self._token_response(code.grant)

    def _refresh_grant(self, client_id, params):
        value = params.get("refresh_token", "")
        record = self._tokens.get(value)
        if record is None or record.kind != "refresh" or not self._valid(record):
            return _invalid_grant("refresh token invalid, used or revoked")
        if record.grant.client_id != client_id:
            return _invalid_grant("refresh token of another client")
        if not self.rotate_refresh_tokens:
            return 200, self._token_response(record.grant, refresh_token=value)
        record.revoked = True
        return 200, self._token_response(record.grant)

    def _userinfo(self, params, headers):
        authorization = headers.get("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        answer = self.introspect(token.strip()) if scheme.lower() == "bearer" else {"active": False}
        if not answer["active"]:
            return 401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        user = answer["email"]
        return 200, {"sub": answer["sub"], "email": user, "email_verified": True, **self.users[user]}

    def _introspect(self, params, headers):
        basic = _basic(headers)
        allowed = basic is not None and (
            basic == self.introspection_credentials or self._client(dict(), headers) is not None
        )
        if not allowed:
            return 401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="introspect"'}
        return 200, self.introspect(params.get("token"))

    def _revoke(self, params, headers):
        if self._client(params, headers) is None:
            return 401, {"error": "invalid_client"}
        with self._lock:
            record = self._tokens.get(params.get("token", ""))
            if record is not None:
                if record.kind == "refresh":
                    self._revoke_grant(record.grant)
                else:
                    record.revoked = True
        return 200, ""

    def _metadata(self, params, headers):
        return 200, {
            "issuer": self.base_url.rstrip("/"),
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "userinfo_endpoint": self.userinfo_url,
            "introspection_endpoint": self.introspection_url,
            "revocation_endpoint": self.revocation_url,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "id_token_signing_alg_values_supported": ["HS256"],
            "scopes_supported": self.default_scope.split(),
        }


def _invalid_grant(description):
    return 400, {"error": "invalid_grant", "error_description": description}


def _basic(headers):
    """(user, password) of an HTTP Basic Authorization header, or None."""
    scheme, _, value = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


_CONSENT = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - test identity provider</title></head>
<body>
<h1>Allow {client} to use your mailbox?</h1>
<p>Signed in as <strong id="user">{user}</strong>. Permissions: <code id="scope">{scope}</code>.</p>
<form method="post" action="/authorize/approve">
<input type="hidden" name="ticket" value="{ticket}">
<button type="submit" id="allow" name="decision" value="allow">Allow</button>
<button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form>
</body></html>
"""
