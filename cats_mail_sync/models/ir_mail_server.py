from odoo import api, fields, models, modules
from odoo.tools import email_normalize

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from .. import series
from ..mailbox_client import errors


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    mailbox_user_id = fields.Many2one(
        "res.users",
        "Mailbox of",
        readonly=True,
        ondelete="cascade",
        help="Kept in step by cats_mail_sync with this user's mailbox settings.",
    )

    @api.model
    def _find_mail_server(self, email_from, mail_servers=None):
        """A recruiter's server carries their own mail only, never anyone else's.

        It is chosen for mail whose sender is exactly its (proven) address, and is
        never a domain match nor the fallback Odoo uses when nothing matches. One
        whose saved password or sign-in was not given for its SMTP server is passed
        over: that mail leaves as if the recruiter had no server of their own.
        """
        if mail_servers is None:
            mail_servers = self.sudo().search([], order="sequence")
        own = mail_servers.filtered("mailbox_user_id")
        sender = email_normalize(email_from)
        credentials = self.env["cats_mail_sync.credentials"]
        for server in own.filtered("active"):
            if sender and server.from_filter and server.from_filter == sender:
                if not credentials._fits(server.mailbox_user_id, "smtp"):
                    break
                return server, email_from
        return super()._find_mail_server(email_from, mail_servers - own)

    @api.model
    def _cats_mail_sync_update(self, users):
        """Keep each user's outgoing server in step with their mailbox.

        Used while the mailbox is active, its address proven and its password or
        sign-in given for this SMTP server; it connects through
        :mod:`mailbox_client.connection` (see :meth:`connect`).
        """
        credentials = self.env["cats_mail_sync.credentials"]
        for user in users.sudo():
            server = user.mailbox_mail_server_id
            wanted = (
                user.mailbox_state == "active"
                and user.mailbox_smtp_host
                and user.mailbox_email_confirmed
                and credentials._fits(user, "smtp")
            )
            if not wanted:
                server.active = False
                continue
            values = {
                "name": self.env._("Mailbox of %(name)s", name=user.name),
                "smtp_host": user.mailbox_smtp_host,
                "smtp_port": user.mailbox_smtp_port,
                "smtp_encryption": user.mailbox_smtp_security,
                "smtp_authentication": "login",
                "smtp_user": user.mailbox_login,
                "from_filter": user.mailbox_email,
                "mailbox_user_id": user.id,
                "active": True,
                **series.personal_server(self, user),
            }
            if server:
                server.write(values)
            else:
                user.mailbox_mail_server_id = self.sudo().create(values)

    # Where Odoo opens an SMTP connection: connect on 18, _connect__ on 19 (a method of one name
    # only: an override of the other would never be called, and mail would go out unchecked).
    def connect(self, *args, **kwargs):
        return self._mailbox_connect(super().connect, *args, **kwargs)

    def _connect__(self, *args, **kwargs):
        return self._mailbox_connect(super()._connect__, *args, **kwargs)

    def _mailbox_connect(
        self,
        connect,
        host=None,
        port=None,
        user=None,
        password=None,
        encryption=None,
        smtp_from=None,
        ssl_certificate=None,
        ssl_private_key=None,
        smtp_debug=False,
        mail_server_id=None,
        allow_archived=False,
    ):
        """``connect``, but a recruiter's own server connects like their mailbox does: TLS only,
        certificate verified, the password from where only the sync reads it."""
        if not modules.module.current_test and not host:
            server, smtp_from = (
                (self.sudo().browse(mail_server_id), smtp_from)
                if mail_server_id
                else self.sudo()._find_mail_server(smtp_from)
            )
            server = server or self.browse()
            if server.mailbox_user_id and (server.active or allow_archived):
                if email_normalize(smtp_from) != server.from_filter:
                    raise MailDeliveryException(
                        self.env._("A recruiter's mail server only sends its own recruiter's mail.")
                    )
                try:
                    smtp = self.env["cats_mail_sync.connector"]._user_smtp(server.mailbox_user_id)
                except errors.MailboxError as error:
                    raise MailDeliveryException(server.mailbox_user_id._mailbox_explain(error)) from None
                smtp.smtp_from, smtp.from_filter = smtp_from, server.from_filter
                return smtp
        return connect(
            host=host,
            port=port,
            user=user,
            password=password,
            encryption=encryption,
            smtp_from=smtp_from,
            ssl_certificate=ssl_certificate,
            ssl_private_key=ssl_private_key,
            smtp_debug=smtp_debug,
            mail_server_id=mail_server_id,
            allow_archived=allow_archived,
        )
