"""The listener process of one database: new mail announced within seconds (IMAP IDLE).

Run by ``odoo cats_mail_sync_listen`` (see cli/), beside Odoo's own server, whatever its mode
(threaded or with workers): a process of its own, as Odoo's cron workers and OCA queue_job's
runner are. Several may run (one per Odoo server): exactly one holds the mailboxes' connections,
the one that holds a PostgreSQL advisory lock; the others wait, and one of them takes over within
seconds when it dies (its connection to PostgreSQL, and so its lock, goes with it).

The one that holds the lock runs a :class:`mailbox_client.listener.Listener` and, every few
seconds, makes it listen to the active mailboxes as the database has them (activated,
deactivated or changed: picked up within ``RECONCILE_SECONDS``), says on each mailbox what it does
for it, and that it is alive. When a mailbox hears of new mail, it is announced at once
(``cats_mail_sync.listener._announce``): the scheduled action syncs it. An administrator who
turns it off in Settings has every connection closed within seconds.
"""

import itertools
import logging
import os
import socket
import threading
import time

from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import Registry

from .mailbox_client.listener import Listener

_logger = logging.getLogger(__name__)

# pg_try_advisory_lock(LOCK_SPACE, LOCK_KEY): held by the listener that holds the connections.
LOCK_SPACE = 0x4341_544C  # "CATL"
LOCK_KEY = 1
# How often the mailboxes are read again from the database, and the listener says it is alive.
RECONCILE_SECONDS = 2.0
# How often a waiting listener tries to take over.
STANDBY_SECONDS = 5.0
_NUMBERS = itertools.count(1)


class ListenerService:
    """The listener of ``database``: :meth:`run` until ``stop`` is set."""

    def __init__(
        self, database, *, registry=None, listener_options=None, reconcile_seconds=RECONCILE_SECONDS
    ):
        self.database = database
        self.listener_options = listener_options or {}
        self.reconcile_seconds = reconcile_seconds
        # Host and process; a second listener of the same process (tests) numbered.
        number = next(_NUMBERS)
        self.name = f"{socket.gethostname()}:{os.getpid()}" + (f":{number}" if number > 1 else "")
        # The database's registry when the caller has it (a test running while Odoo still loads it,
        # and holds the lock that Registry() would wait for); else loaded in run().
        self.registry = registry
        self.own_registry = registry is None  # kept current here (a module upgraded meanwhile)
        self._heard = set()
        self._heard_lock = threading.Lock()
        self._woken = threading.Event()
        self.holding = threading.Event()  # set while this one holds the connections

    def run(self, stop):
        """Wait for the lock, then listen, until ``stop`` (a :class:`threading.Event`) is set."""
        self.registry = self.registry or Registry(self.database)
        lock = self.registry.cursor()
        try:
            while not stop.is_set():
                lock.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_SPACE, LOCK_KEY])
                held = lock.fetchone()[0]
                lock.commit()  # the lock is the session's: no transaction is kept open
                if held:
                    _logger.info("Listener %s holds the mailboxes' connections", self.name)
                    try:
                        self._listen(stop)
                    finally:
                        lock.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_SPACE, LOCK_KEY])
                        lock.commit()
                    return
                stop.wait(STANDBY_SECONDS)
        finally:
            lock.close()

    # ------------------------------------------------------------------

    def _listen(self, stop):
        listener = Listener(self._on_new_mail, **self.listener_options).start()
        self.holding.set()
        started = fields.Datetime.now()
        watched, reported = {}, {}
        last = 0.0
        try:
            while not stop.is_set():
                self._woken.wait(0.5)
                self._woken.clear()
                self._announce()
                if time.monotonic() - last < self.reconcile_seconds:
                    continue
                last = time.monotonic()
                if self.own_registry:
                    self.registry = self.registry.check_signaling()
                with self.registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    model = env["cats_mail_sync.listener"]
                    wanted = {w.key: w for w in model._watches(self._credential)} if model._enabled() else {}
                    for key in watched.keys() - wanted.keys():
                        listener.remove(key)
                    for key, watch in wanted.items():
                        if watched.get(key) != watch:
                            listener.add(watch)
                    watched = wanted
                    statuses = {key: status for key, status in listener.statuses().items() if key in wanted}
                    changed = {key: status for key, status in statuses.items() if reported.get(key) != status}
                    model._report(changed, reported.keys() - statuses.keys())
                    reported = statuses
                    self._beat(model, started, listener.held())
        finally:
            self.holding.clear()
            listener.stop()
            self._announce()
            with self.registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                env["cats_mail_sync.listening"].search([]).unlink()
                env["cats_mail_sync.listener"].search([("name", "=", self.name)]).unlink()

    def _on_new_mail(self, key):
        """From the listener's thread: remembered, announced by the service's own thread."""
        with self._heard_lock:
            self._heard.add(key)
        self._woken.set()

    def _announce(self):
        with self._heard_lock:
            heard, self._heard = self._heard, set()
        if heard:
            with self.registry.cursor() as cr:
                api.Environment(cr, SUPERUSER_ID, {})["cats_mail_sync.listener"]._announce(sorted(heard))

    def _credential(self, user_id, server, login):
        """From a login worker: ``user_id``'s password or a fresh access token, for ``server`` and
        ``login`` only (a sign-in refreshed here is saved at once)."""
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            return env["cats_mail_sync.credentials"]._for(env["res.users"].browse(user_id), server, login)

    def _beat(self, model, started, connections):
        row = model.sudo().search([("name", "=", self.name)])
        values = {"seen_at": fields.Datetime.now(), "holding": True, "connections": connections}
        if row:
            row.write(values)
        else:
            model.sudo().create({"name": self.name, "started_at": started, **values})
