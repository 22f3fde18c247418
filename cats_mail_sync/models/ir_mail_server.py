from odoo import fields, models, modules

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

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

    def connect(
        self,
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
        # A recruiter's own server connects like their mailbox does: TLS only,
        # certificate verified, the password from where only the sync reads it.
        if not modules.module.current_test and not host:
            server, smtp_from = (
                (self.sudo().browse(mail_server_id), smtp_from)
                if mail_server_id
                else self.sudo()._find_mail_server(smtp_from)
            )
            server = server or self.browse()
            if server.mailbox_user_id and (server.active or allow_archived):
                try:
                    smtp = server.mailbox_user_id._mailbox_connect_smtp()
                except errors.MailboxError as error:
                    raise MailDeliveryException(server.mailbox_user_id._mailbox_explain(error)) from None
                smtp.smtp_from, smtp.from_filter = smtp_from, server.from_filter
                return smtp
        return super().connect(
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
