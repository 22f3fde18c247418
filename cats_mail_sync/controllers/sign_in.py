from markupsafe import Markup, escape

from odoo import http
from odoo.http import request

from ..mailbox_client import errors
from ..models.cats_mail_sync_sign_in import CALLBACK, StateRefused


class MailboxSignIn(http.Controller):
    @http.route(CALLBACK, type="http", auth="user", methods=["GET"])
    def sign_in(self, state=None, code=None, error=None, **_ignored):
        """Where Microsoft or Google send the recruiter back after signing in."""
        env = request.env
        try:
            setup = env["cats_mail_sync.sign_in"]._check(state)
        except StateRefused:
            return self._page(
                env._(
                    "This sign-in link is not valid: it was already used, it expired, or it was made for "
                    "someone else. Start again from My Profile (Email tab)."
                ),
                400,
            )
        if error or not code:
            return self._page(
                env._("The sign-in was cancelled or refused (%(error)s). Nothing was changed.", error=error),
                400,
            )
        try:
            setup._signed_in(state, code)
        except errors.MailboxError as problem:
            # The state stays used up: this transaction is committed.
            return self._page(setup.user_id._mailbox_explain(problem), 400)
        return request.redirect(f"/odoo/action-cats_mail_sync.cats_mail_sync_setup_action/{setup.id}")

    def _page(self, message, status):
        title = request.env._("Mailbox sign-in")
        back = request.env._("Back to Odoo")
        body = Markup(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>%s</title></head>"
            "<body style='font-family: sans-serif; max-width: 40em; margin: 3em auto'>"
            "<h1>%s</h1><p id='cats_mail_sync_sign_in_problem'>%s</p>"
            "<p><a href='/odoo'>%s</a></p></body></html>"
        ) % (title, title, escape(message), back)
        return request.make_response(
            str(body), status=status, headers=[("Content-Type", "text/html; charset=utf-8")]
        )
