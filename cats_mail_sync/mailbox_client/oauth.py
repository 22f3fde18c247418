"""Sign in to a mailbox with Microsoft or Google: the OAuth2 authorization code flow.

The recruiter's browser goes to the provider's authorize endpoint with a PKCE
challenge (S256) and comes back with a code; :func:`exchange_code` turns it into
tokens and the signed-in address, :func:`refresh` gets a fresh access token,
:func:`revoke` ends the grant where the provider can. The access token then
signs in to IMAP and SMTP with SASL XOAUTH2 (:mod:`.connection`).

Every endpoint is HTTPS, checked against the system trust store plus an optional
CA bundle. A refused grant is :class:`errors.SignInExpired` (sign in again); a
provider that cannot be reached is :class:`errors.ProviderUnreachable` (retried).
No token ever appears in an error text.
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from . import errors
from .connection import Server

TIMEOUT = 20


@dataclass(frozen=True)
class Provider:
    """An identity platform whose accounts have mailboxes."""

    code: str
    label: str
    authorize_url: str
    token_url: str
    revoke_url: str | None
    scopes: tuple
    imap: Server
    smtp: Server
    extra: tuple = ()  # more parameters of the authorize request


MICROSOFT_SCOPES = (
    "offline_access",
    "openid",
    "email",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)
GOOGLE_SCOPES = ("openid", "email", "https://mail.google.com/")
MICROSOFT_ENDPOINT = "https://login.microsoftonline.com/common/oauth2/v2.0/"


def microsoft(endpoint=MICROSOFT_ENDPOINT, tenant=None):
    """Microsoft's identity platform at ``endpoint`` (Odoo's ``microsoft_outlook.endpoint``),
    for ``tenant`` (common, organizations, consumers or a tenant id) in place of "common"."""
    endpoint = endpoint.rstrip("/") + "/"
    if tenant:
        endpoint = endpoint.replace("/common/", f"/{tenant}/")
    return Provider(
        "microsoft",
        "Microsoft",
        endpoint + "authorize",
        endpoint + "token",
        None,  # Microsoft offers no revocation of one grant
        MICROSOFT_SCOPES,
        Server("outlook.office365.com", 993, "ssl"),
        Server("smtp.office365.com", 587, "starttls"),
    )


def google(endpoint=None):
    """Google's identity platform; ``endpoint`` (a base URL) puts all its endpoints elsewhere."""
    if endpoint:
        endpoint = endpoint.rstrip("/") + "/"
        urls = (endpoint + "authorize", endpoint + "token", endpoint + "revoke")
    else:
        urls = (
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            "https://oauth2.googleapis.com/revoke",
        )
    return Provider(
        "google",
        "Google",
        *urls,
        GOOGLE_SCOPES,
        Server("imap.gmail.com", 993, "ssl"),
        Server("smtp.gmail.com", 465, "ssl"),
        # A refresh token is only given with offline access, and again only on consent.
        extra=(("access_type", "offline"), ("prompt", "consent")),
    )


@dataclass(frozen=True)
class Client:
    """The application registered with the provider (Odoo's Settings)."""

    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str | None  # None: the one held stays valid
    address: str | None  # the signed-in mail address, when an ID token came


def pkce_challenge(verifier):
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(provider, client, state, verifier, login_hint=None):
    """Where the browser signs in; the provider sends it back to ``client.redirect_uri``."""
    params = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "response_type": "code",
        "scope": " ".join(provider.scopes),
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
        **dict(provider.extra),
    }
    if login_hint:
        params["login_hint"] = login_hint
    return f"{provider.authorize_url}?{urlencode(params)}"


def exchange_code(provider, client, code, verifier, *, ca_file=None):
    """The tokens for an authorization ``code``, with the address that signed in."""
    return _token_request(
        provider,
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        },
        ca_file,
    )


def refresh(provider, client, refresh_token, *, ca_file=None):
    """A new access token (and, where the provider rotates them, a new refresh token)."""
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if provider.code == "microsoft":
        params["scope"] = " ".join(provider.scopes)
    return _token_request(provider, client, params, ca_file)


def revoke(provider, client, token, *, ca_file=None):
    """End the grant of ``token`` where the provider offers it; whether it was done."""
    if not provider.revoke_url:
        return False
    try:
        response = requests.post(
            provider.revoke_url,
            data={"token": token, "client_id": client.client_id, "client_secret": client.client_secret},
            timeout=TIMEOUT,
            verify=ca_file or True,
        )
    except requests.RequestException:
        return False
    return response.ok


def signed_in_address(id_token, client_id):
    """The mail address an OpenID Connect ID token names, or None.

    The token came straight from the provider's token endpoint over verified
    TLS, which OpenID Connect Core (3.1.3.7) accepts in place of its signature;
    it must still be meant for this client.
    """
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, AttributeError):
        return None
    audience = claims.get("aud")
    if client_id not in (audience if isinstance(audience, list) else [audience]):
        return None
    if claims.get("email_verified") is False:
        return None
    address = claims.get("email") or claims.get("preferred_username")
    return address.strip().lower() if isinstance(address, str) and "@" in address else None


def _token_request(provider, client, params, ca_file):
    try:
        response = requests.post(
            provider.token_url,
            data={**params, "client_id": client.client_id, "client_secret": client.client_secret},
            headers={"Accept": "application/json"},
            timeout=TIMEOUT,
            verify=ca_file or True,
        )
        answer = response.json() if response.content else {}
    except (requests.RequestException, ValueError):
        raise errors.ProviderUnreachable(provider=provider.label) from None
    if response.status_code >= 500 or not isinstance(answer, dict):
        raise errors.ProviderUnreachable(provider=provider.label)
    error = answer.get("error")
    if error == "invalid_grant":
        raise errors.SignInExpired(provider=provider.label)
    if error or response.status_code != 200 or not answer.get("access_token"):
        # The application's registration (client id, secret, redirect URI) was refused.
        raise errors.SignInRefused(provider=provider.label, reason=str(error or response.status_code)[:60])
    try:
        expires_in = int(answer.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600
    return Tokens(
        answer["access_token"],
        expires_in,
        answer.get("refresh_token"),
        signed_in_address(answer.get("id_token") or "", client.client_id),
    )
