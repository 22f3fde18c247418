"""Errors a recruiter can act on.

``str(error)`` is the English sentence shown to the user. The Odoo layer
translates it with ``env._(error.message, **error.params)``: ``_lt`` below
only marks the sentences so that Odoo's term extraction finds them.
No error text ever contains a password.
"""


def _lt(message):
    return message


class MailboxError(Exception):
    """A mailbox problem explained in the recruiter's words."""

    message = _lt("The mail server could not be reached.")
    # True: the settings are wrong, retrying cannot help (no more logins).
    definitive = False

    def __init__(self, message=None, **params):
        if message:
            self.message = message
        self.params = params
        super().__init__(self.message % params if params else self.message)


class AuthenticationFailed(MailboxError):
    message = _lt(
        "The mail server refused the login name or password. Check them, "
        "or create an app password if your provider requires one."
    )
    definitive = True


class TokenRefused(AuthenticationFailed):
    """The server refused the OAuth2 access token (expired, revoked, not this mailbox's):
    a refused login like a wrong password, in other words."""

    message = _lt("The mail server refused the sign-in; sign in again.")


class SignInExpired(TokenRefused):
    """The provider refused the refresh token (``invalid_grant``): revoked, password
    changed, consent withdrawn. Only signing in again helps."""

    message = _lt(
        "Your sign-in with %(provider)s has expired or was withdrawn. "
        "Sign in again in My Profile (Email tab) to resume."
    )


class SignInRefused(MailboxError):
    """The provider refused this Odoo's application (client id, secret or redirect URI)."""

    message = _lt(
        "%(provider)s refused Odoo's sign-in application (%(reason)s). Ask your administrator to "
        "check the client id and secret in Settings."
    )
    definitive = True


class SignInNotSetUp(MailboxError):
    message = _lt(
        "Signing in with %(provider)s is not set up in this Odoo yet: ask your administrator to enter "
        "its client id and secret in Settings."
    )
    definitive = True


class ProviderUnreachable(MailboxError):
    message = _lt("The sign-in service of %(provider)s could not be reached; it is tried again later.")


class ServerNotFound(MailboxError):
    message = _lt("The server %(host)s does not exist (no DNS record). Check the host name.")


class ServerUnreachable(MailboxError):
    """Refused, timed out, no route, reset, not TLS, not IMAP/SMTP: all one answer.

    One sentence for every way a port can fail, so that trying settings out
    cannot tell an open port of some other service from a closed one.
    """

    message = _lt(
        "No mail server answered at %(host)s on port %(port)s. "
        "Check the server name, the port and the security setting."
    )


class HostNotAllowed(MailboxError):
    """The server resolves to a loopback, private, link-local or otherwise non-public address."""

    message = _lt(
        "The server %(host)s is on a private or local network, which is not allowed for mail "
        "servers. Ask your administrator."
    )
    definitive = True


class CertificateNotTrusted(MailboxError):
    message = _lt(
        "The certificate of %(host)s is not trusted (%(reason)s). The connection "
        "was refused to keep your password safe."
    )
    # A certificate that changed needs a person to look: no login until then.
    definitive = True


class SecureConnectionUnavailable(MailboxError):
    message = _lt(
        "The server %(host)s does not offer a secure connection (STARTTLS) on port "
        "%(port)s. Only encrypted connections are allowed."
    )


class FolderNotFound(MailboxError):
    message = _lt("No Sent folder was found in the mailbox.")
    definitive = True


class FolderGone(MailboxError):
    message = _lt("The folder %(folder)s is no longer in the mailbox.")
    definitive = True


class SearchRefused(MailboxError):
    """The server refused a SEARCH of the look-back: tried again at the next run."""

    message = _lt(
        "The mail server refused to search %(folder)s for addresses (%(reason)s); "
        "tried again at the next run."
    )


class MailUnread(MailboxError):
    """The server's answer for a mail held no header (none, or NIL): the folder is read up to it,
    and from it again at the next run."""

    message = _lt(
        "%(folder)s: the mail server's answer for mail %(uid)s held no header, so it could not be "
        "read. It is read again at the next run, with the mail after it; nothing is lost."
    )


class AnswersUnreadable(MailboxError):
    """No mail of a folder can be read: the server answers every one without its header."""

    message = _lt(
        "%(folder)s: the mail server answers every mail without its header, so no mail can be "
        "logged. Nothing was passed over; report it to your administrator (the server log has the "
        "details)."
    )
    definitive = True


class SyncInterrupted(MailboxError):
    message = _lt("The last synchronization was interrupted; it is retried at the next run.")


class UnexpectedError(MailboxError):
    """A fault in Odoo or in this module (a bug), not in the mailbox or its server: retried at
    every run like network trouble, but shown as a problem to report."""

    message = _lt(
        "An unexpected error (%(kind)s) stopped the synchronization of this mailbox. Please report it "
        "to your administrator: the server log has the details. Nothing is lost; it is tried again at "
        "every run."
    )


class InvalidSettings(MailboxError):
    message = _lt("The mailbox settings are incomplete or invalid: %(reason)s")
    definitive = True


class SecretUnreadable(MailboxError):
    message = _lt(
        "Your saved mailbox password can no longer be read (the server's encryption key changed). "
        "Enter your password again in My Profile."
    )
    definitive = True


class SecretNotForServer(MailboxError):
    """A saved password asked for a server or login it was not saved for: refused, never sent."""

    message = _lt(
        "The password was saved for another server or login: type it again in My Profile (Configure)."
    )
    definitive = True


class SignInNotForServer(SecretNotForServer):
    """A sign-in asked for another server than its provider's own, or another login than its address."""

    message = _lt(
        "The sign-in with %(provider)s only goes to %(provider)s's own mail servers, as the address "
        "signed in: sign in again in My Profile (Configure)."
    )
