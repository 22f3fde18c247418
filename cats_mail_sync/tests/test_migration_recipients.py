"""Upgrading to 18.0.1.4.0 moves the recipients of mail logged before out of its text."""

import logging

from markupsafe import Markup

from odoo.tests import TransactionCase, new_test_user, tagged

from .common import load_migration

TEXT = "<p>Please find my CV attached</p>"
NOTE = "<p><i>This mail is larger than the limit: Left out: cv.pdf (30 MB).</i></p>"


def old_body(recipients, text=TEXT):
    """A text as the logger wrote it until 18.0.1.3.0: the recipients' paragraph first."""
    header = Markup("").join(Markup("<b>%s:</b> %s<br/>") % (label, value) for label, value in recipients)
    return Markup("<p>%s</p>%s") % (header, Markup(text))


@tagged("post_install", "-at_install")
class TestMigrationRecipients(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.migration = load_migration("1.4.0")
        cls.recruiter = new_test_user(cls.env, "rita", email="rita@recruit.example.test")
        cls.contact = cls.env["res.partner"].create({"name": "Chris", "email": "chris@client.example.com"})

    def post(self, body, logged=True, **values):
        """A message posted as the logger posted it, its text stored by Odoo's sanitizer."""
        if logged:
            values["mailbox_user_id"] = self.recruiter.id
        return self.contact.message_post(body=body, message_type="email", **values)

    def stored(self, message, body):
        """Write ``body`` into ``message`` as it is, past the sanitizer."""
        self.env.cr.execute("UPDATE mail_message SET body = %s WHERE id = %s", [body, message.id])
        self.env.invalidate_all()
        return message

    def migrate(self):
        """Run the migration as an upgrade does; what it logs."""
        with self.assertLogs(self.migration._logger.name, logging.INFO) as logs:
            self.migration.migrate(self.env.cr, "18.0.1.3.0")
        self.env.invalidate_all()
        return [record.getMessage() for record in logs.records]

    def recipients(self, message):
        return (message.mailbox_to, message.mailbox_cc, message.mailbox_bcc)

    def test_the_recipients_paragraph_moves_into_the_fields_in_both_languages(self):
        english = self.post(
            old_body(
                [
                    ("To", '"Chris" <chris@client.example.com>'),
                    ("Cc", "R&D <rd@client.example.com>, O'Brien <ob@client.example.com>"),
                    ("Bcc", "carla@example.com"),
                ]
            )
        )
        # Odoo's sanitizer stored "<br>" and kept the values escaped.
        self.assertTrue(
            english.body.startswith(
                '<p><b>To:</b> "Chris" &lt;chris@client.example.com&gt;<br><b>Cc:</b> R&amp;D '
            ),
            english.body,
        )
        # Logged by 18.0.1.1.0 to 18.0.1.3.0: the To was kept already (the whole of it).
        long_to = ", ".join(f"candidate{i}@example.com" for i in range(60))
        dutch = self.post(
            old_body([("Aan", long_to), ("Cc", "Tom & Jerry <tj@example.com>")], text=NOTE + TEXT),
            mailbox_to=long_to[:1000],
        )
        # As Odoo's sanitizer may not have written it: "<br/>".
        only_cc = self.stored(self.post(TEXT), "<p><b>Cc:</b> &lt;a@b&gt;<br/></p>" + TEXT)

        self.assertEqual(self.migrate(), ["Moved the recipients of 3 logged mails out of their text"])
        self.assertEqual(english.body, TEXT)
        self.assertEqual(
            self.recipients(english),
            (
                '"Chris" <chris@client.example.com>',
                "R&D <rd@client.example.com>, O'Brien <ob@client.example.com>",
                "carla@example.com",
            ),
        )
        self.assertEqual(dutch.body, NOTE + TEXT)
        self.assertEqual(self.recipients(dutch), (long_to[:1000], "Tom & Jerry <tj@example.com>", False))
        self.assertEqual(only_cc.body, TEXT)
        self.assertEqual(self.recipients(only_cc), (False, "<a@b>", False))

    def test_the_fields_get_the_recipients_as_the_logger_keeps_them(self):
        long_cc = ", ".join(f"colleague{i}@client.example.com" for i in range(60))
        message = self.post(old_body([("To", "chris@client.example.com"), ("Cc", long_cc)]))
        self.stored(message, message.body.replace("chris@", "chris\x01@"))
        # A To the message kept already stays as it is.
        kept = self.post(old_body([("To", "chris@client.example.com")]), mailbox_to="Chris <chris@x>")
        self.migrate()
        self.assertEqual(message.body, TEXT)
        self.assertEqual(self.recipients(message), ("chris@client.example.com", long_cc[:1000], False))
        self.assertEqual(kept.body, TEXT)
        self.assertEqual(self.recipients(kept), ("Chris <chris@x>", False, False))

    def test_other_texts_are_left_as_they_are(self):
        header = "<p><b>To:</b> chris@client.example.com<br></p>"
        texts = [
            TEXT,
            "<p><b>Hello</b> Chris</p>",
            # Not at the start.
            "<p>Hello</p>" + header,
            NOTE + header + TEXT,
            " " + header + TEXT,
            # Not only recipients, or not as the logger wrote them.
            "<p><b>From:</b> chris@client.example.com<br></p>" + TEXT,
            "<p><b>To:</b> chris@client.example.com<br><b>Subject:</b> CV<br></p>" + TEXT,
            "<p><b>To:</b> chris@client.example.com<br>and more</p>" + TEXT,
            "<p><b>To:</b> chris@client.example.com</p>" + TEXT,
            "<p><b>To:</b> <a href='mailto:c@x'>c@x</a><br></p>" + TEXT,
            "<p><b>Cc:</b> a@b<br><b>To:</b> c@d<br></p>" + TEXT,
            "<p><b>To:</b> a@b<br><b>To:</b> c@d<br></p>" + TEXT,
            "<p><b>To:</b> a@b<br><b>Cc:</b> c@d<br></p",
        ]
        messages = [self.stored(self.post(TEXT), text) for text in texts]
        # Not logged from a mailbox.
        note = self.stored(self.post(TEXT, logged=False), header + TEXT)
        self.assertEqual(self.migrate(), ["Moved the recipients of 0 logged mails out of their text"])
        for message, text in zip(messages, texts, strict=True):
            self.assertEqual(message.body, text)
            self.assertEqual(self.recipients(message), (False, False, False), text)
        self.assertEqual(note.body, header + TEXT)

    def test_messages_are_read_and_changed_in_batches(self):
        header = "<p><b>To:</b> chris@client.example.com<br></p>"
        changed = [self.stored(self.post(TEXT), header + f"<p>{i}</p>") for i in range(5)]
        kept = self.stored(self.post(TEXT), "<p><b>From:</b> chris@client.example.com<br></p>")
        move = self.migration.move_recipients_out_of_bodies
        self.assertEqual(move(self.env.cr, batch=2), 5)
        self.env.invalidate_all()
        self.assertEqual([message.body for message in changed], [f"<p>{i}</p>" for i in range(5)])
        self.assertEqual({message.mailbox_to for message in changed}, {"chris@client.example.com"})
        self.assertEqual(kept.body, "<p><b>From:</b> chris@client.example.com<br></p>")
        # Once moved, nothing more to move.
        self.assertEqual(move(self.env.cr, batch=2), 0)
