"""``odoo cats_mail_sync_listen``: log new mail within seconds (IMAP IDLE), beside Odoo's server.

    python3 -m odoo --addons-path=ADDONS cats_mail_sync_listen -c odoo.conf -d DB

Holds one connection per active mailbox (two where the server has no NOTIFY) and announces new
mail as it arrives: Odoo's scheduled action then logs it (see ``listener_service.py``). Run it as
a service of its own beside Odoo, with Odoo's configuration, on one or several servers: one holds
the connections, the others take over when it stops. Stops on SIGTERM or Ctrl-C.
"""

import argparse
import signal
import sys
import threading
from pathlib import Path

from odoo import tools
from odoo.cli import Command

# Absolute imports, and the file named after the command (see cats_mail_sync_rotate_key.py).
# pylint: disable=odoo-addons-relative-import
from odoo.addons.cats_mail_sync.listener_service import ListenerService


class CatsMailSyncListen(Command):
    """Log recruiters' new mail within seconds, listening to their mailboxes (cats_mail_sync)"""

    name = "cats_mail_sync_listen"

    def parser(self):
        program = Path(sys.argv[0]).name
        parser = argparse.ArgumentParser(
            prog=f"{'odoo' if program == '__main__.py' else program} {self.name}",
            description=self.__doc__ + ". Other Odoo options (such as --db_host) are passed on to Odoo.",
        )
        parser.add_argument("-c", "--config", help="the Odoo configuration file")
        parser.add_argument("-d", "--database", help="the database (default: db_name of the configuration)")
        return parser

    def run(self, cmdargs):
        parser = self.parser()
        args, odoo_args = parser.parse_known_args(cmdargs)
        config = ["-c", args.config] if args.config else []
        tools.config.parse_config([*config, *odoo_args], setup_logging=True)
        configured = tools.config["db_name"] or []  # a list on Odoo 19, a string on 18
        configured = configured.split(",") if isinstance(configured, str) else configured
        database = args.database or next(iter(configured), None)
        if not database:
            parser.error("name the database with -d (or db_name in the configuration)")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        ListenerService(database).run(stop)
