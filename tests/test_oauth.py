"""OAuth2 sign-in, no Odoo: the test authorization server (harness.oauth_server) over real HTTPS,
and XOAUTH2 with open_imap / open_smtp against Dovecot (its oauth2 passdb asks that server)
and aiosmtpd."""

import base64
import json
import logging
import secrets
import ssl
import traceback
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from harness import tls
from harness.dovecot import Dovecot
from harness.oauth_server import OAuthServer, jwt_claims, pkce_challenge
from harness.smtp_server import AuthAttempt, SMTPTestServer
from mailbox_client import connection, errors

ANNA = "anna@recruit.example.test"
BOB = "bob@recruit.example.test"
REDIRECT_URI = "https://odoo.example.test/cats_mail_sync/oauth/callback"
REFUSED = "The mail server refused the sign-in; sign in again."
MODES = ("ssl", "starttls")


# ----------------------------------------------------------------------
# HTTP with urllib, as the Odoo side will do it
# ----------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the redirect comes back as an HTTPError: its Location is what we want


def http(oauth, method, path, params=None, headers=None):
    """(status, headers, body) of a request to ``oauth``; JSON bodies decoded."""
    url, data = oauth.url(path), None
    if method == "GET" and params:
        url += "?" + urlencode(params)
    elif params is not None:
        data = urlencode(params).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=oauth.ca_file)), _NoRedirect
    )
    try:
        with opener.open(request, timeout=10) as response:
            status, answer_headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, answer_headers, body = exc.code, exc.headers, exc.read()
    if answer_headers.get("Content-Type", "").startswith("application/json"):
        body = json.loads(body)
    return status, answer_headers, body


def redirect_params(headers):
    location = headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def authorize(oauth, verifier, **extra):
    """GET /authorize as the browser would; return the parameters of the redirect."""
    params = {
        "client_id": oauth.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email offline_access https://mail.example.test/",
        "state": "state-42",
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
        **extra,
    }
    status, headers, _ = http(oauth, "GET", "/authorize", params)
    assert status == 302
    return redirect_params(headers)


def exchange(oauth, code, verifier, **extra):
    params = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT_URI,
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
        **extra,
    }
    status, _, body = http(oauth, "POST", "/token", params)
    return status, body


def refresh(oauth, refresh_token):
    params = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
    }
    status, _, body = http(oauth, "POST", "/token", params)
    return status, body


def sign_in(oauth, user=ANNA):
    """The whole authorization code flow; return the token response."""
    verifier = secrets.token_urlsafe(48)
    status, body = exchange(oauth, authorize(oauth, verifier, login_hint=user)["code"], verifier)
    assert status == 200, body
    return body


def userinfo(oauth, access_token):
    return http(oauth, "GET", "/userinfo", headers={"Authorization": f"Bearer {access_token}"})


@pytest.fixture
def oauth():
    with OAuthServer({ANNA: {"name": "Anna Recruiter"}, BOB: {}}, expires_in=300) as server:
        yield server


# ----------------------------------------------------------------------
# The authorization server
# ----------------------------------------------------------------------


def test_authorization_code_flow_with_pkce(oauth):
    verifier = secrets.token_urlsafe(48)
    redirect = authorize(oauth, verifier, login_hint=ANNA, nonce="n-1")
    assert redirect["state"] == "state-42"
    status, tokens = exchange(oauth, redirect["code"], verifier)
    assert status == 200
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 300
    assert tokens["scope"] == "openid email offline_access https://mail.example.test/"
    assert tokens["access_token"] and tokens["refresh_token"]
    claims = jwt_claims(tokens["id_token"], key=oauth.client_secret)
    assert claims["email"] == ANNA and claims["aud"] == oauth.client_id and claims["nonce"] == "n-1"
    assert claims["name"] == "Anna Recruiter"
    with pytest.raises(ValueError):
        jwt_claims(tokens["id_token"], key="another secret")

    status, _, info = userinfo(oauth, tokens["access_token"])
    assert status == 200 and info["email"] == ANNA
    user, password = oauth.introspection_credentials
    basic = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    status, _, answer = http(oauth, "POST", "/introspect", {"token": tokens["access_token"]}, basic)
    assert status == 200
    assert answer["active"] is True and answer["email"] == ANNA and answer["username"] == ANNA
    # Only access tokens are active for a mail server; and introspection needs credentials.
    assert http(oauth, "POST", "/introspect", {"token": tokens["refresh_token"]}, basic)[2] == {
        "active": False
    }
    assert http(oauth, "POST", "/introspect", {"token": tokens["access_token"]})[0] == 401

    assert [(r.method, r.path) for r in oauth.requests] == [
        ("GET", "/authorize"),
        ("POST", "/token"),
        ("GET", "/userinfo"),
        ("POST", "/introspect"),
        ("POST", "/introspect"),
        ("POST", "/introspect"),
    ]
    assert oauth.requests[0].params["code_challenge"] == pkce_challenge(verifier)
    assert oauth.requests[1].params["code_verifier"] == verifier


def test_default_user_without_login_hint(oauth):
    verifier = secrets.token_urlsafe(48)
    tokens = exchange(oauth, authorize(oauth, verifier)["code"], verifier)[1]
    assert jwt_claims(tokens["id_token"])["email"] == ANNA


def test_wrong_code_verifier_is_refused(oauth):
    verifier = secrets.token_urlsafe(48)
    code = authorize(oauth, verifier)["code"]
    status, body = exchange(oauth, code, secrets.token_urlsafe(48))
    assert (status, body["error"]) == (400, "invalid_grant")
    # The code was used up by the refused attempt.
    assert exchange(oauth, code, verifier)[1]["error"] == "invalid_grant"


def test_replayed_code_is_refused_and_its_tokens_revoked(oauth):
    verifier = secrets.token_urlsafe(48)
    code = authorize(oauth, verifier)["code"]
    status, tokens = exchange(oauth, code, verifier)
    assert status == 200
    status, body = exchange(oauth, code, verifier)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert not oauth.active(tokens["access_token"])
    assert refresh(oauth, tokens["refresh_token"])[1]["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "change, status, error",
    [
        ({"redirect_uri": "https://elsewhere.example.test/callback"}, 400, "invalid_grant"),
        ({"client_secret": "not-the-secret"}, 401, "invalid_client"),
        ({"code_": "code-0-unknown"}, 400, "invalid_grant"),
        ({"code_verifier": ""}, 400, "invalid_grant"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_token_endpoint_refusals(oauth, change, status, error):
    verifier = secrets.token_urlsafe(48)
    code = change.pop("code_", None) or authorize(oauth, verifier)["code"]
    answer_status, body = exchange(oauth, code, verifier, **change)
    assert (answer_status, body["error"]) == (status, error)


def test_expired_code_is_refused(oauth):
    verifier = secrets.token_urlsafe(48)
    code = authorize(oauth, verifier)["code"]
    oauth.advance(oauth.code_ttl + 1)
    assert exchange(oauth, code, verifier)[1]["error"] == "invalid_grant"


def test_authorize_errors(oauth):
    verifier = secrets.token_urlsafe(48)
    # Unknown client: an error page, never a redirect to an unchecked URI.
    status, headers, _ = http(
        oauth, "GET", "/authorize", {"client_id": "nobody", "redirect_uri": REDIRECT_URI}
    )
    assert status == 400 and "Location" not in headers
    assert authorize(oauth, verifier, code_challenge_method="plain")["error"] == "invalid_request"
    assert authorize(oauth, verifier, login_hint="eve@recruit.example.test") == {
        "error": "access_denied",
        "state": "state-42",
    }


def test_registered_redirect_uris_only():
    with OAuthServer([ANNA], redirect_uris=[REDIRECT_URI]) as oauth:
        verifier = secrets.token_urlsafe(48)
        assert "code" in authorize(oauth, verifier)
        params = {"client_id": oauth.client_id, "redirect_uri": "https://evil.example.test/"}
        status, headers, _ = http(oauth, "GET", "/authorize", params)
        assert status == 400 and "Location" not in headers


def test_consent_page():
    with OAuthServer([ANNA], auto_approve=False) as oauth:
        verifier = secrets.token_urlsafe(48)
        params = {
            "client_id": oauth.client_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "state": "s",
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        redirects = {}
        for decision in ("deny", "allow"):
            status, _, page = http(oauth, "GET", "/authorize", params)
            assert status == 200
            page = page.decode()
            assert 'action="/authorize/approve"' in page and ANNA in page
            ticket = page.split('name="ticket" value="')[1].split('"')[0]
            status, headers, _ = http(
                oauth, "POST", "/authorize/approve", {"ticket": ticket, "decision": decision}
            )
            assert status == 303
            redirects[decision] = redirect_params(headers)
            # A ticket is good once.
            again = http(oauth, "POST", "/authorize/approve", {"ticket": ticket, "decision": "allow"})
            assert again[0] == 400
        assert redirects["deny"] == {"error": "access_denied", "state": "s"}
        assert redirects["allow"]["state"] == "s"
        assert exchange(oauth, redirects["allow"]["code"], verifier)[0] == 200


def test_refresh_rotates_and_the_old_token_is_refused(oauth):
    first = sign_in(oauth)
    status, second = refresh(oauth, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert jwt_claims(second["id_token"])["email"] == ANNA
    status, body = refresh(oauth, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    # The new one works (and is rotated in turn); access tokens already issued stay valid.
    assert refresh(oauth, second["refresh_token"])[0] == 200
    assert oauth.active(first["access_token"]) and oauth.active(second["access_token"])


def test_refresh_without_rotation():
    with OAuthServer([ANNA], rotate_refresh_tokens=False) as oauth:
        tokens = sign_in(oauth)
        for _ in range(2):
            status, body = refresh(oauth, tokens["refresh_token"])
            assert status == 200 and "refresh_token" not in body


def test_expired_access_token_and_refresh(oauth):
    tokens = sign_in(oauth)
    oauth.advance(301)
    assert not oauth.active(tokens["access_token"])
    assert userinfo(oauth, tokens["access_token"])[0] == 401
    status, fresh = refresh(oauth, tokens["refresh_token"])
    assert status == 200 and oauth.active(fresh["access_token"])


def test_revoke_user_gives_invalid_grant(oauth):
    anna, bob = sign_in(oauth, ANNA), sign_in(oauth, BOB)
    oauth.revoke(ANNA)
    status, body = refresh(oauth, anna["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert userinfo(oauth, anna["access_token"])[0] == 401
    assert refresh(oauth, bob["refresh_token"])[0] == 200
    # Signing in again works.
    assert oauth.active(sign_in(oauth, ANNA)["access_token"])


def test_revocation_endpoint(oauth):
    tokens = sign_in(oauth)
    params = {"token": tokens["refresh_token"], "client_id": oauth.client_id}
    assert http(oauth, "POST", "/revoke", {**params, "client_secret": "wrong"})[0] == 401
    assert http(oauth, "POST", "/revoke", {**params, "client_secret": oauth.client_secret})[0] == 200
    assert refresh(oauth, tokens["refresh_token"])[1]["error"] == "invalid_grant"
    assert not oauth.active(tokens["access_token"])


def test_discovery_metadata(oauth):
    status, _, metadata = http(oauth, "GET", "/.well-known/openid-configuration")
    assert status == 200
    assert metadata["token_endpoint"] == oauth.token_url
    assert metadata["code_challenge_methods_supported"] == ["S256"]


# ----------------------------------------------------------------------
# IMAP: XOAUTH2 to Dovecot, which checks the token at the introspection endpoint
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mail():
    """An OAuth server and a Dovecot that trusts its tokens (plus a password user)."""
    with (
        OAuthServer([ANNA, BOB]) as oauth,
        Dovecot({"carl@example.test": "Pa55-word-carl"}, oauth=oauth) as dovecot,
    ):
        yield oauth, dovecot


@pytest.fixture
def fresh_dovecot(mail):
    """A Dovecot of its own, for a test whose logins fail: after a failed login, Dovecot
    delays the next ones from the same address (by seconds, doubling)."""
    oauth, _dovecot = mail
    with Dovecot({"carl@example.test": "Pa55-word-carl"}, oauth=oauth) as dovecot:
        yield dovecot


def imap_server(dovecot, security):
    return connection.Server(
        "localhost", dovecot.ssl_port if security == "ssl" else dovecot.starttls_port, security
    )


def open_imap(dovecot, security="ssl", login=ANNA, **options):
    options.setdefault("ca_file", dovecot.ca_file)
    options.setdefault("allow_private", True)
    return connection.open_imap(imap_server(dovecot, security), login, **options)


def shown(exc):
    """Everything an error could show: text, repr, traceback, parameters."""
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc)) + repr(exc.params)


@pytest.mark.parametrize("security", MODES)
def test_imap_xoauth2_login(mail, security):
    oauth, dovecot = mail
    uid = dovecot.append(BOB, "INBOX", b"From: a@example.org\r\nSubject: Hi\r\n\r\nHello\r\n")
    token = sign_in(oauth, BOB)["access_token"]
    client = open_imap(dovecot, security, login=BOB, access_token=token)
    try:
        assert client.folder_status("INBOX", ["MESSAGES", "UIDNEXT"])[b"UIDNEXT"] > uid
    finally:
        client.logout()
    introspected = [r for r in oauth.requests if r.path == "/introspect" and r.params["token"] == token]
    assert len(introspected) == 1


def refused_token(oauth, kind):
    if kind == "garbage":
        return "at-0-" + secrets.token_urlsafe(32)
    token = oauth.issue(BOB if kind == "another user's" else ANNA)["access_token"]
    if kind == "expired":
        oauth.expire(ANNA)
    elif kind == "revoked":
        oauth.revoke(ANNA)
    return token


REFUSALS = ("expired", "revoked", "garbage", "another user's")


@pytest.mark.parametrize("kind", REFUSALS)
def test_imap_refused_token(mail, fresh_dovecot, kind, caplog):
    oauth, _dovecot = mail
    caplog.set_level(logging.DEBUG)
    token = refused_token(oauth, kind)
    with pytest.raises(errors.TokenRefused) as info:
        open_imap(fresh_dovecot, access_token=token)
    exc = info.value
    assert isinstance(exc, errors.AuthenticationFailed)
    assert exc.definitive is True
    assert str(exc) == REFUSED
    assert token not in shown(exc)
    assert token not in caplog.text
    # Dovecot did ask (the refusal is the server's, not a guess of the client's).
    assert any(r.path == "/introspect" and r.params["token"] == token for r in oauth.requests)


def test_imap_password_still_works(mail):
    _oauth, dovecot = mail
    open_imap(dovecot, "starttls", login="carl@example.test", password="Pa55-word-carl").logout()
    # The OAuth users have a password for the harness's own connections.
    with dovecot.client(ANNA) as client:
        assert client.folder_status("INBOX", ["MESSAGES"])


def test_imap_token_is_no_password_and_password_no_token(mail, fresh_dovecot):
    oauth, _dovecot = mail
    token = oauth.issue(ANNA)["access_token"]
    with pytest.raises(errors.AuthenticationFailed) as info:
        open_imap(fresh_dovecot, password=token)
    assert not isinstance(info.value, errors.TokenRefused)
    with pytest.raises(errors.TokenRefused):
        open_imap(fresh_dovecot, login="carl@example.test", access_token="Pa55-word-carl")


def test_imap_token_check_unavailable_is_temporary():
    """The authorization server is down: Dovecot says [UNAVAILABLE], which is worth a retry."""
    oauth = OAuthServer([ANNA]).start()
    with Dovecot({}, oauth=oauth) as dovecot:
        token = oauth.issue(ANNA)["access_token"]
        oauth.stop()
        with pytest.raises(errors.ServerUnreachable) as info:
            open_imap(dovecot, access_token=token)
        assert info.value.definitive is False
        assert token not in shown(info.value)


@pytest.mark.parametrize("token", ["", "two words", "line\r\nA1 LOGOUT", "tab\tbed"])
def test_malformed_token_never_sent(mail, token):
    oauth, dovecot = mail
    before = len(oauth.requests)
    with pytest.raises(errors.TokenRefused):
        open_imap(dovecot, access_token=token)
    assert len(oauth.requests) == before


def test_exactly_one_credential(mail):
    _oauth, dovecot = mail
    with pytest.raises(TypeError):
        open_imap(dovecot)
    with pytest.raises(TypeError):
        open_imap(dovecot, password="x", access_token="y")
    with pytest.raises(errors.InvalidSettings):
        open_imap(dovecot, login="anna\x01auth=Bearer x", access_token="y")


def test_imap_token_goes_through_the_guards(mail):
    oauth, dovecot = mail
    token = oauth.issue(ANNA)["access_token"]
    with pytest.raises(errors.HostNotAllowed):
        open_imap(dovecot, access_token=token, allow_private=False)
    # The system trust store does not know the test CA: no TLS, no token sent.
    with pytest.raises(errors.CertificateNotTrusted) as info:
        open_imap(dovecot, access_token=token, ca_file=None)
    assert token not in shown(info.value)
    assert not any(r.params.get("token") == token for r in oauth.requests)


# ----------------------------------------------------------------------
# SMTP: AUTH XOAUTH2 to aiosmtpd
# ----------------------------------------------------------------------


@pytest.fixture
def smtp(mail):
    oauth, _dovecot = mail
    with SMTPTestServer({"carl@example.test": "Pa55-word-carl"}, oauth=oauth) as server:
        yield oauth, server


def smtp_port(server, security):
    return server.starttls_port if security == "starttls" else server.ssl_port


def open_smtp(server, security="ssl", login=ANNA, **options):
    where = connection.Server("localhost", smtp_port(server, security), security)
    return connection.open_smtp(
        where, login, ca_file=tls.authority().ca_file, timeout=5, allow_private=True, **options
    )


@pytest.mark.parametrize("security", MODES)
def test_smtp_xoauth2_send(smtp, security):
    oauth, server = smtp
    session = open_smtp(server, security, access_token=sign_in(oauth)["access_token"])
    try:
        assert isinstance(session.sock, ssl.SSLSocket)
        assert session.sendmail(ANNA, ["candidate@example.org"], b"Subject: Interview\r\n\r\nHello\r\n") == {}
    finally:
        session.quit()
    assert [(m.login, m.listener) for m in server.messages] == [(ANNA, security)]
    assert server.auth_attempts == [AuthAttempt(security, "XOAUTH2")]


@pytest.mark.parametrize("kind", REFUSALS)
def test_smtp_refused_token(smtp, kind, caplog):
    oauth, server = smtp
    caplog.set_level(logging.DEBUG)
    token = refused_token(oauth, kind)
    with pytest.raises(errors.TokenRefused) as info:
        open_smtp(server, access_token=token)
    exc = info.value
    assert exc.definitive is True and str(exc) == REFUSED
    assert token not in shown(exc)
    assert token not in caplog.text
    assert server.auth_attempts == [AuthAttempt("ssl", "XOAUTH2")]
    assert server.messages == []


def test_smtp_token_check_by_callable():
    def owner(token):
        return ANNA if token == "good-token" else None

    with SMTPTestServer(oauth=owner) as server:
        open_smtp(server, access_token="good-token").quit()
        with pytest.raises(errors.TokenRefused):
            open_smtp(server, login=BOB, access_token="good-token")


def test_smtp_password_unchanged_with_oauth(smtp):
    _oauth, server = smtp
    open_smtp(server, "starttls", login="carl@example.test", password="Pa55-word-carl").quit()
    assert server.auth_attempts == [AuthAttempt("starttls", "PLAIN")]


def test_smtp_xoauth2_offered_only_with_oauth():
    with SMTPTestServer({"carl@example.test": "pw"}) as plain_server:
        where = connection.Server("localhost", plain_server.ssl_port, "ssl")
        session = connection.open_smtp(
            where, "carl@example.test", "pw", ca_file=tls.authority().ca_file, timeout=5, allow_private=True
        )
        try:
            assert session.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        finally:
            session.quit()
        # A token sent there anyway is refused like any other.
        with pytest.raises(errors.TokenRefused):
            open_smtp(plain_server, access_token="some-token")


def test_smtp_no_token_without_tls(mail):
    oauth, _dovecot = mail
    token = oauth.issue(ANNA)["access_token"]
    with SMTPTestServer(plaintext=True, oauth=oauth) as server:
        where = connection.Server("localhost", server.plain_port, "starttls")
        with pytest.raises(errors.SecureConnectionUnavailable):
            connection.open_smtp(where, ANNA, access_token=token, timeout=5, allow_private=True)
        assert server.auth_attempts == [] and server.messages == []
