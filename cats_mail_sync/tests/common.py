"""Shared set-up: a real Dovecot over TLS, recruiters, candidates and contacts."""

from email.message import EmailMessage
from email.utils import format_datetime

from odoo.tests import TransactionCase, new_test_user

from .harness.dovecot import Dovecot

ANNA = "anna@recruit.example.test"
BERT = "bert@recruit.example.test"
PASSWORDS = {ANNA: "anna-Secret-42", BERT: "bert-Secret-43"}


def make_mail(
    sender,
    to,
    subject="Hello",
    body="Dear candidate",
    cc=(),
    bcc=(),
    message_id=None,
    date=None,
    attachments=(),
):
    """A mail as a client would put it in a mailbox."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join([to] if isinstance(to, str) else to)
    if cc:
        mail["Cc"] = ", ".join(cc)
    if bcc:
        mail["Bcc"] = ", ".join(bcc)
    mail["Subject"] = subject
    if message_id:
        mail["Message-ID"] = message_id
    if date:
        mail["Date"] = format_datetime(date)
    mail.set_content(body)
    mail.add_alternative(f"<p>{body}</p>", subtype="html")
    for name, content, maintype, subtype in attachments:
        mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return mail


def allow_local_servers(env, ca_file):
    """Let the mailboxes reach the test servers: on loopback, under the tests' own CA."""
    params = env["ir.config_parameter"].sudo()
    params.set_param("cats_mail_sync.ca_file", ca_file)
    params.set_param("cats_mail_sync.allow_private_hosts", "True")


class MailboxCase(TransactionCase):
    """One Dovecot per test class; Anna and Bert are recruiters with a mailbox there."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dovecot = Dovecot(PASSWORDS, **cls.dovecot_options()).start()
        cls.addClassCleanup(cls.dovecot.stop)
        allow_local_servers(cls.env, cls.dovecot.ca_file)
        cls.anna = cls.recruiter("anna", ANNA)
        cls.bert = cls.recruiter("bert", BERT)
        cls.candidate = cls.env["hr.candidate"].create(
            {"partner_name": "Carla Candidate", "email_from": "Carla.Candidate@Example.com"}
        )
        cls.job = cls.env["hr.job"].create({"name": "Welder"})
        cls.application = cls.env["hr.applicant"].create(
            {"candidate_id": cls.candidate.id, "job_id": cls.job.id}
        )
        cls.refused_application = cls.env["hr.applicant"].create(
            {
                "candidate_id": cls.candidate.id,
                "job_id": cls.env["hr.job"].create({"name": "Painter"}).id,
                "refuse_reason_id": cls.env["hr.applicant.refuse.reason"].search([], limit=1).id,
                "active": False,
            }
        )
        cls.client_contact = cls.env["res.partner"].create(
            {"name": "Chris Client", "email": "chris@client.example.com"}
        )

    @classmethod
    def dovecot_options(cls):
        """More arguments of the test class's :class:`Dovecot`."""
        return {}

    def setUp(self):
        super().setUp()
        # The database goes back to the class's state after each test; so
        # does the mail server: each test starts with empty folders.
        for login in PASSWORDS:
            with self.dovecot.client(login) as client:
                for folder in ("INBOX", "Sent"):
                    client.select_folder(folder)
                    client.delete_messages(client.search(["ALL"]))
                    client.expunge()

    @classmethod
    def recruiter(cls, login, address, **settings):
        user = new_test_user(
            cls.env,
            login=login,
            email=address,
            groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
        )
        user.write(cls.settings_for(address, **settings))
        return user

    @classmethod
    def settings_for(cls, address, **settings):
        return {
            "mailbox_email": address,
            "mailbox_login": address,
            "mailbox_password": PASSWORDS.get(address, "x"),
            "mailbox_imap_host": cls.dovecot.host,
            "mailbox_imap_port": cls.dovecot.ssl_port,
            "mailbox_imap_security": "ssl",
            **settings,
        }

    def saved_password(self, user):
        """``user``'s saved mailbox password, read as the sync reads it (whatever server)."""
        return self.env["cats_mail_sync.credentials"]._password(user)

    def sync(self, user):
        """One synchronization of ``user``'s mailbox; the number of mails logged."""
        return self.env["cats_mail_sync.sync"]._sync(user)

    def run_cron(self):
        self.env["cats_mail_sync.sync"]._cron()

    def deliver(self, user, mail, folder="INBOX", **kwargs):
        return self.dovecot.append(user.mailbox_login, folder, mail, **kwargs)

    def logged(self, record, message_id=None):
        """Mail logged on ``record`` by cats_mail_sync (optionally one Message-ID)."""
        domain = [("model", "=", record._name), ("res_id", "=", record.id), ("mailbox_user_id", "!=", False)]
        if message_id:
            domain.append(("message_id", "=", message_id))
        return self.env["mail.message"].search(domain)

    def messages_with(self, message_id):
        return self.env["mail.message"].search([("message_id", "=", message_id)])
