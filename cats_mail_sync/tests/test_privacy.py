from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged

from odoo.addons.mail.tools.discuss import Store

from .. import series
from .common import ANNA, BERT, MailboxCase, chatter_recipients, make_mail

PDF = b"%PDF-1.4 offer for Chris"
CARLA = "carla.candidate@example.com"
DANA = "dana@applicants.example.org"


@tagged("post_install", "-at_install")
class TestPrivacy(MailboxCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.anna.action_mailbox_activate()
        cls.colleague_contact = (
            cls.env["hr.employee"]
            .create({"name": "Eva Employee", "work_email": "eva@recruit.example.test"})
            .work_contact_id
        )
        cls.company_contact = cls.env["res.partner"].create(
            {
                "name": "Reception",
                "email": "reception@recruit.example.test",
                "parent_id": cls.env.company.partner_id.id,
            }
        )
        cls.env.company.partner_id.email = "office@recruit.example.test"

    def test_mail_among_colleagues_is_never_logged(self):
        for number, other in enumerate(
            [
                BERT,
                "eva@recruit.example.test",
                "reception@recruit.example.test",
                "office@recruit.example.test",
            ]
        ):
            self.deliver(self.anna, make_mail(other, ANNA, message_id=f"<internal-{number}@x>"))
        self.assertEqual(self.sync(self.anna), 0)
        for number in range(4):
            self.assertFalse(self.messages_with(f"<internal-{number}@x>").filtered("mailbox_user_id"))

    def test_the_company_s_mail_domains_are_internal(self):
        self.env["res.partner"].create({"name": "Old colleague", "email": "old@staff.example.org"})
        self.env["ir.config_parameter"].sudo().set_param(
            "cats_mail_sync.internal_domains", "staff.example.org"
        )
        self.deliver(self.anna, make_mail("old@staff.example.org", ANNA, message_id="<domain@x>"))
        self.deliver(
            self.anna,
            make_mail("old@staff.example.org", [ANNA, "carla.candidate@example.com"], message_id="<mixed@x>"),
        )
        self.assertEqual(self.sync(self.anna), 1)
        self.assertFalse(self.messages_with("<domain@x>").filtered("mailbox_user_id"))
        self.assertEqual(len(self.logged(self.candidate, "<mixed@x>")), 1)

    def test_a_colleague_on_a_candidate_s_mail_is_no_contact(self):
        mail = make_mail(
            "carla.candidate@example.com", [ANNA, "eva@recruit.example.test"], message_id="<cc@x>"
        )
        self.deliver(self.anna, mail)
        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(len(self.logged(self.candidate, "<cc@x>")), 1)
        self.assertFalse(self.logged(self.colleague_contact))

    def test_a_mail_blind_copied_to_two_candidates_shows_each_only_its_own_address(self):
        dana = series.new_person(self.env, {"partner_name": "Dana", "email_from": DANA})
        mail = make_mail(
            ANNA,
            "chris@client.example.com",
            bcc=[CARLA, DANA],
            message_id="<bcc@x>",
            body="Offer",
            attachments=[("offer.pdf", PDF, "application", "pdf")],
        )
        self.deliver(self.anna, mail, folder="Sent")
        self.assertEqual(self.sync(self.anna), 1)
        for record, own in (
            (self.client_contact, None),
            (self.candidate, CARLA),
            (self.application, CARLA),
            (dana, DANA),
        ):
            message = self.logged(record, "<bcc@x>")
            self.assertEqual(len(message), 1, record)
            self.assertEqual(message.mailbox_to, "chris@client.example.com")
            self.assertEqual(message.mailbox_bcc, own or False, record)
            store = Store()
            store.add(message)
            lines = chatter_recipients(store.get_result()["mail.message"][0], self.env)
            self.assertEqual(
                lines, [("To", "chris@client.example.com")] + ([("Bcc", own)] if own else []), record
            )
            # Neither the text nor a file carries the headers.
            self.assertEqual(message.attachment_ids.mapped("name"), ["offer.pdf"])
            for address in (CARLA, DANA):
                self.assertNotIn(address, message.body.lower(), record)

    def test_bcc_stays_out_of_the_original_file_of_other_records(self):
        dana = series.new_person(self.env, {"partner_name": "Dana", "email_from": DANA})
        raw = (
            b"From: " + ANNA.encode() + b"\r\nTo: chris@client.example.com\r\n"
            b"Bcc: " + CARLA.encode() + b", " + DANA.encode() + b"\r\n"
            b"Message-ID: <broken-bcc@x>\r\nSubject: x\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        )
        logger = self.env["cats_mail_sync.logger"]
        values = logger._safest(raw, {"message_id": "<broken-bcc@x>"})
        for record, bcc in ((self.client_contact, set()), (self.candidate, {CARLA}), (dana, {DANA})):
            logger._post(record, values, self.env["res.partner"], self.anna, bcc)
        for record, own, others in (
            (self.client_contact, None, [CARLA, DANA]),
            (self.candidate, CARLA, [DANA]),
            (dana, DANA, [CARLA]),
        ):
            message = self.logged(record, "<broken-bcc@x>")
            file = message.attachment_ids.raw
            self.assertEqual(message.mailbox_bcc, own or False, record)
            for other in others:
                self.assertNotIn(other.encode(), file, record)
                self.assertNotIn(other, message.body, record)
            if own:
                self.assertIn(b"Bcc: " + own.encode(), file)

    def test_exclusion_lists_of_the_administrator_and_the_recruiter(self):
        self.env["ir.config_parameter"].sudo().set_param("cats_mail_sync.excluded", "client.example.com")
        self.deliver(self.anna, make_mail("chris@client.example.com", ANNA, message_id="<excluded-1@x>"))
        self.deliver(
            self.anna,
            make_mail(
                "carla.candidate@example.com", ANNA, cc=["doctor@clinic.example"], message_id="<ex-2@x>"
            ),
        )
        self.anna.with_user(self.anna).write({"mailbox_excluded": "doctor@clinic.example"})
        self.assertEqual(self.sync(self.anna), 0)
        self.assertFalse(self.messages_with("<excluded-1@x>").filtered("mailbox_user_id"))
        self.assertFalse(self.messages_with("<ex-2@x>").filtered("mailbox_user_id"))

    def test_an_exclusion_list_names_what_is_neither_an_address_nor_a_domain(self):
        anna = self.anna.with_user(self.anna)
        for typed in ("@@@", "geen adres!!", "doctor@clinic.example\nann@x"):
            with self.subTest(typed), self.assertRaisesRegex(ValidationError, "is neither an address"):
                anna.write({"mailbox_excluded": typed})
        anna.write({"mailbox_excluded": "doctor@clinic.example\n@family.org, bücher.de"})
        self.assertEqual(self.anna.mailbox_excluded, "doctor@clinic.example\n@family.org, bücher.de")

    def test_only_recruitment_users_and_the_owner_read_logged_mail(self):
        mail = make_mail(
            "chris@client.example.com",
            ANNA,
            message_id="<private@x>",
            attachments=[("offer.pdf", PDF, "application", "pdf")],
        )
        self.deliver(self.anna, mail)
        self.sync(self.anna)
        message = self.logged(self.client_contact, "<private@x>")
        attachment = message.attachment_ids
        self.assertEqual(len(attachment), 1)

        employee = new_test_user(self.env, login="employee", groups="base.group_user")
        portal = new_test_user(self.env, login="cats_portal", groups="base.group_portal")
        self.client_contact.with_user(employee).read(["name"])  # the contact itself stays readable
        for outsider in (employee, portal):
            messages = self.env["mail.message"].with_user(outsider)
            self.assertFalse(messages.search([("id", "=", message.id)]))
            found = messages.search_read([("model", "=", "res.partner")], ["message_id"])
            self.assertNotIn("<private@x>", [m["message_id"] for m in found])
            with self.assertRaises(AccessError):
                message.with_user(outsider).read(["body"])
            attachments = self.env["ir.attachment"].with_user(outsider)
            if attachments.has_access("read"):  # portal users may not even search
                self.assertFalse(attachments.search([("id", "=", attachment.id)]))
            with self.assertRaises(AccessError):
                attachment.with_user(outsider).read(["raw"])
            with self.assertRaises(AccessError):
                attachment.with_user(outsider).datas  # noqa: B018
        self.assertNotIn(message, self.client_contact.with_user(employee).message_ids)

        recruiter = new_test_user(
            self.env, login="recruiter", groups="base.group_user,hr_recruitment.group_hr_recruitment_user"
        )
        self.assertEqual(message.with_user(recruiter).read(["body"])[0]["id"], message.id)
        self.assertEqual(attachment.with_user(recruiter).raw, PDF)
