"""What every IMAP server of the tests offers (Dovecot, Courier-IMAP, Cyrus IMAP), so that a test
is written once and run against each: implicit TLS on ``ssl_port`` of ``host`` and STARTTLS on
``starttls_port``, under the run's test CA (``ca_file``); ``client(login)``, ``append(...)``, and
the names of the Inbox and the Sent folder as the server lists them (``inbox``, ``sent_folder``:
Courier's Sent is "INBOX.Sent")."""

import ssl

import imapclient


class ImapServer:
    """Base of the servers: subclasses set ``users``, ``authority``, ``host``, ``ssl_port``,
    ``starttls_port``, ``folders`` ({name: SPECIAL-USE flag or None}) and start()/stop()."""

    name = "IMAP server"
    inbox = "INBOX"

    @property
    def ca_file(self):
        return str(self.authority.ca_file)

    @property
    def sent_folder(self):
        """The folder flagged \\Sent, else "Sent"."""
        return next((name for name, flag in self.folders.items() if flag == "\\Sent"), "Sent")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def client(self, login):
        """An IMAPClient logged in as ``login``, for putting mail in and looking at it."""
        context = ssl.create_default_context(cafile=self.ca_file)
        client = imapclient.IMAPClient(self.host, port=self.ssl_port, ssl=True, ssl_context=context)
        client.login(login, self.users[login])
        return client

    def append(self, login, folder, message, flags=(), date=None):
        """APPEND ``message`` (bytes or EmailMessage) to ``folder``; return its UID."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        with self.client(login) as client:
            response = client.append(folder, raw, flags=flags, msg_time=date)
        return int(response.split(b"APPENDUID ")[1].split()[1].rstrip(b"]"))
