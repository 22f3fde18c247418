"""Shared set-up: a real Dovecot over TLS, recruiters, candidates and contacts."""

import importlib.util
import threading
import uuid
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from unittest.mock import patch

from odoo import SUPERUSER_ID, api
from odoo.tests import TransactionCase, new_test_user

from .. import series
from ..models.mail_message import shown_addresses
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


def registry_in_test_mode(case):
    """New cursors of the registry are savepoints of the test class's transaction, as under
    HttpCase, until the class ends. The one test helper Odoo renamed: Registry.enter_test_mode
    on Odoo 18, the test case's registry_enter_test_mode_cls on 19."""
    if hasattr(case, "registry_enter_test_mode_cls"):
        case.registry_enter_test_mode_cls()
    else:
        case.registry.enter_test_mode(case.cr)
        case.addClassCleanup(case.registry.leave_test_mode)


@contextmanager
def as_in_production():
    """The calling thread as Odoo's cron thread: not a test's, so its cursor commits (the sync's too:
    on Odoo 19 the test is a global, so the sync's own test check is what changes there; 19's
    runner does not mark the thread at all)."""
    with (
        patch.object(threading.current_thread(), "testing", False, create=True),
        patch.object(series, "in_test_mode", lambda: False),
    ):
        yield


class MailboxCase(TransactionCase):
    """One IMAP server per test class (Dovecot, unless ``imap_server`` says another: see
    test_other_servers.py); Anna and Bert are recruiters with a mailbox there.

    ``deliver(..., "Sent")`` puts mail in the server's Sent folder, whatever its name there."""

    imap_server = Dovecot

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.imap = cls.imap_server(PASSWORDS, **cls.imap_options()).start()
        cls.addClassCleanup(cls.imap.stop)
        allow_local_servers(cls.env, cls.imap.ca_file)
        cls.anna = cls.recruiter("anna", ANNA)
        cls.bert = cls.recruiter("bert", BERT)
        cls.candidate = series.new_person(
            cls.env, {"partner_name": "Carla Candidate", "email_from": "Carla.Candidate@Example.com"}
        )
        cls.job = cls.env["hr.job"].create({"name": "Welder"})
        cls.application = series.new_application(cls.candidate, {"job_id": cls.job.id})
        cls.refused_application = series.new_application(
            cls.candidate,
            {
                "job_id": cls.env["hr.job"].create({"name": "Painter"}).id,
                "refuse_reason_id": cls.env["hr.applicant.refuse.reason"].search([], limit=1).id,
                "active": False,
            },
        )
        cls.client_contact = cls.env["res.partner"].create(
            {"name": "Chris Client", "email": "chris@client.example.com"}
        )

    @classmethod
    def imap_options(cls):
        """More arguments of the test class's :class:`Dovecot`."""
        return {}

    def setUp(self):
        super().setUp()
        # The database goes back to the class's state after each test; so
        # does the mail server: each test starts with empty folders.
        for login in PASSWORDS:
            with self.imap.client(login) as client:
                for folder in (self.imap.inbox, self.imap.sent_folder):
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
            "mailbox_imap_host": cls.imap.host,
            "mailbox_imap_port": cls.imap.ssl_port,
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
        folder = self.imap.sent_folder if folder == "Sent" else folder
        return self.imap.append(user.mailbox_login, folder, mail, **kwargs)

    def logged(self, record, message_id=None):
        """Mail logged on ``record`` by cats_mail_sync (optionally one Message-ID)."""
        domain = [("model", "=", record._name), ("res_id", "=", record.id), ("mailbox_user_id", "!=", False)]
        if message_id:
            domain.append(("message_id", "=", message_id))
        return self.env["mail.message"].search(domain)

    def messages_with(self, message_id):
        return self.env["mail.message"].search([("message_id", "=", message_id)])


class CommittedMailboxCase(TransactionCase):
    """Recruiters' mailboxes synced as in production, with real commits, in data of the test's own:
    made and committed through a second cursor (``cr_real``, ``env_real``) before each test, deleted
    after it, and the settings put back. The test's own transaction is left alone.

    Each test class has a Dovecot of its own, with ``mailboxes`` mailboxes named after
    ``login_prefix`` and the class's token; each is a recruiter's (``users``), set up and activated.
    The candidate (``candidate_address``) is the class's too. ``params``: the ir.config_parameter
    keys the tests change, put back after each test."""

    mailboxes = 1
    login_prefix = "recruiter"
    params = ("cats_mail_sync.ca_file", "cats_mail_sync.allow_private_hosts")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = uuid.uuid4().hex[:8]
        cls.passwords = {
            f"{cls.login_prefix}{number}.{cls.token}@recruit.example.test": (
                f"{cls.login_prefix}{number}-Secret-{cls.token}"
            )
            for number in range(cls.mailboxes)
        }
        cls.imap = Dovecot(cls.passwords).start()
        cls.addClassCleanup(cls.imap.stop)

    def setUp(self):
        super().setUp()
        self.cr_real = self.registry.cursor()
        self.addCleanup(self.cr_real.close)
        env = self.env_real = api.Environment(self.cr_real, SUPERUSER_ID, {})
        self.candidate, self.users = env[series.PERSON], env["res.users"]
        params = env["ir.config_parameter"]
        self.params_before = {key: params.get_param(key) for key in self.params}
        self.remember(env)
        self.addCleanup(self.clean_up)
        allow_local_servers(env, self.imap.ca_file)
        self.candidate_address = f"carla.{self.token}@example.com"
        self.candidate = series.new_person(
            env, {"partner_name": "Carla Candidate", "email_from": self.candidate_address}
        )
        for address, password in self.passwords.items():
            user = new_test_user(
                env,
                login=address.split("@")[0],
                email=address,
                groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
                context={"no_reset_password": True},
            )
            user.write(
                {
                    "mailbox_email": address,
                    "mailbox_login": address,
                    "mailbox_password": password,
                    "mailbox_imap_host": self.imap.host,
                    "mailbox_imap_port": self.imap.ssl_port,
                    "mailbox_imap_security": "ssl",
                }
            )
            self.users |= user
        self.commit()
        for user in self.users:
            user.action_mailbox_activate()
        self.commit()

    def remember(self, env):
        """Hook: note more of the database's state, before the test's data is made (the ``params``
        are noted already)."""

    def forget(self, env):
        """Hook: delete more of what the test left, first (after the rollback)."""

    def commit(self):
        self.cr_real.commit()
        self.env_real.invalidate_all()

    def clean_up(self):
        self.cr_real.rollback()
        env = self.env_real
        self.forget(env)
        env["mail.message"].search([("message_id", "like", f"%.{self.token}@%")]).unlink()
        # The activations' confirmation mails, still in the outgoing queue.
        env["mail.mail"].search([("email_to", "like", f".{self.token}@")]).unlink()
        env["cats_mail_sync.run"].search([("user_id", "in", self.users.ids)]).unlink()
        partners = self.users.partner_id | self.candidate.partner_id
        self.candidate.unlink()
        self.users.unlink()
        partners.unlink()
        for key, value in self.params_before.items():
            env["ir.config_parameter"].set_param(key, value or False)
        self.commit()

    def logged(self, cr=None):
        """``{Message-ID: times logged on the candidate}``, as ``cr`` sees it (by default ``cr_real``)."""
        cr = cr or self.cr_real
        cr.execute(
            """
            SELECT message_id, count(*) FROM mail_message
             WHERE model = %s AND res_id = %s AND mailbox_user_id IS NOT NULL
             GROUP BY message_id
            """,
            [series.PERSON, self.candidate.id],
        )
        return dict(cr.fetchall())


def chatter_recipients(data, env):
    """To whom the chatter says a logged mail went, from what it loads (a Store's data for the
    message): ``[(label, addresses)]``, labelled in ``env``'s language. The addon's lines, after
    the To and Cc that Odoo shows itself where it does (19: ``incoming_email_to``/``_cc``)."""
    odoo_lines = [
        (env._(label), shown_addresses(", ".join(f'"{name}" <{address}>' for name, address in data[field])))
        for label, field in (("To", "incoming_email_to"), ("Cc", "incoming_email_cc"))
        if data.get(field)
    ]
    return odoo_lines + [(line["label"], line["value"]) for line in data.get("cats_mailbox_recipients", [])]


def load_migration(version):
    """The post-migration script of ``version`` (a folder of migrations/), loaded as Odoo loads it
    (its name is no module name)."""
    path = Path(__file__).resolve().parent.parent / "migrations" / version / "post-migrate.py"
    name = f"cats_mail_sync_migration_{version.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
