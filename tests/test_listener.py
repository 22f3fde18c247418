"""The mail listener (mailbox_client.listener) against a real Dovecot over TLS, no Odoo.

Each test checks what a recruiter would notice: a mail in the Inbox or in Sent is signalled
within seconds, once per burst, never for a mail that was only removed; the listener comes back
after the server dropped it, waits before trying a refused password again, leaves a server
without IDLE to the cycle, and lets go of a mailbox that is no longer watched.
"""

import logging
import subprocess
import threading
import time

import pytest

from harness.dovecot import Dovecot
from harness.oauth_server import OAuthServer
from harness.proxy import FakeImapServer, FaultProxy
from mailbox_client import connection, errors, listener

PASSWORD = "Corr3ct-h0rse-battery"
NEW_PASSWORD = "N3w-staple-4-battery"
WRONG_PASSWORD = "wr0ng-Pa55word-7731"
# One fresh mailbox per test on the shared server; Dovecot re-reads its passwd file at most once
# a second, so every user is written at start.
POOL = 40
# How soon a mail must be signalled: Dovecot itself waits half a second before it tells.
SOON = 5.0


def mail(number, subject="Interview"):
    return f"From: candidate@example.org\r\nSubject: {subject} {number}\r\n\r\nBody {number}\r\n".encode()


@pytest.fixture(scope="module")
def dovecot():
    """No test fails a login on this server: Dovecot slows every login down after one fails."""
    with Dovecot({f"user{n}@example.test": PASSWORD for n in range(POOL)}) as server:
        yield server


@pytest.fixture(scope="module")
def fresh_logins(dovecot):
    return iter(dovecot.users)


@pytest.fixture
def login(fresh_logins):
    return next(fresh_logins)


class Signals:
    """``on_new_mail``: each call with the time and the thread it came from."""

    def __init__(self):
        self.calls = []
        self.threads = set()
        self._changed = threading.Condition()

    def __call__(self, key):
        with self._changed:
            self.calls.append((key, time.monotonic()))
            self.threads.add(threading.current_thread().name)
            self._changed.notify_all()

    def count(self, key):
        with self._changed:
            return sum(1 for each, _at in self.calls if each == key)

    def wait(self, key, count=1, timeout=SOON):
        """The time of the ``count``-th signal for ``key``; None if it did not come in time."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                times = [at for each, at in self.calls if each == key]
                if len(times) >= count:
                    return times[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)


class Credential:
    """A watch's ``credential``: counts the connections that asked, and when."""

    def __init__(self, password=PASSWORD):
        self.password = password
        self.calls = []

    def __call__(self):
        self.calls.append(time.monotonic())
        return {"password": self.password}


def watch(server, login, credential=None, port=None, **settings):
    return listener.Watch(
        key=login,
        server=connection.Server(server.host, port or server.ssl_port, "ssl"),
        login=login,
        credential=credential or Credential(),
        ca_file=server.ca_file,
        allow_private=True,  # the test server is on loopback
        **settings,
    )


# Quick enough for tests: a dropped connection is back within a second.
QUICK = {"coalesce": 1.0, "steady_after": 0.5, "reconnect_spread": 0.5, "retry_delay": lambda failures: 60}


@pytest.fixture
def signals():
    return Signals()


@pytest.fixture
def start_listener(signals):
    started = []

    def start(**options):
        running = listener.Listener(signals, **{**QUICK, **options}).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def listening(running, key, connections, timeout=10.0):
    """Wait until the mailbox is listening on ``connections`` connections."""

    def ready():
        status = running.status(key)
        return status is not None and status.state == listener.LISTENING and status.connections == connections

    return until(ready, timeout)


def doveadm(server, *args):
    return subprocess.run(
        ["doveadm", "-c", str(server.root / "dovecot.conf"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def dovecot_log(server):
    return (server.root / "dovecot.log").read_text()


# ----------------------------------------------------------------------
# New mail is signalled, once per burst, never for a removal
# ----------------------------------------------------------------------


@pytest.mark.parametrize(("use_notify", "connections"), [(True, 1), (False, 2)], ids=["notify", "two-idle"])
def test_mail_in_inbox_and_in_sent_is_signalled_within_seconds(
    dovecot, login, signals, start_listener, use_notify, connections
):
    running = start_listener(use_notify=use_notify)
    running.add(watch(dovecot, login))
    assert listening(running, login, connections)
    assert running.status(login).notify is use_notify
    assert signals.count(login) == 0, "nothing new yet"

    appended = time.monotonic()
    dovecot.append(login, "INBOX", mail(1))
    signalled = signals.wait(login, 1)
    assert signalled is not None and signalled - appended < SOON

    time.sleep(QUICK["coalesce"] + 0.2)  # the burst window of the Inbox's mail is over
    appended = time.monotonic()
    dovecot.append(login, dovecot.sent_folder, mail(2))
    signalled = signals.wait(login, 2)
    assert signalled is not None and signalled - appended < SOON
    assert signals.threads == {"mail-listener"}, "signals come from the loop thread"


def test_a_burst_of_twenty_mails_gives_one_or_two_signals(dovecot, login, signals, start_listener):
    running = start_listener(coalesce=3.0)
    running.add(watch(dovecot, login))
    assert listening(running, login, 1)
    # Spread over 1.6 s: Dovecot, which gathers what happens in half a second, tells of it
    # several times; the listener must still make it one call, and one more at the window's end.
    with dovecot.client(login) as client:
        for number in range(20):
            client.append("INBOX", mail(number))
            time.sleep(0.08)
    assert signals.wait(login, 1) is not None
    time.sleep(3.5)  # the window, and the trailing signal, are over
    assert 1 <= signals.count(login) <= 2


@pytest.mark.parametrize("use_notify", [True, False], ids=["notify", "two-idle"])
def test_mail_removed_alone_gives_no_signal(dovecot, login, signals, start_listener, use_notify):
    for folder in ("INBOX", dovecot.sent_folder):
        for number in range(3):
            dovecot.append(login, folder, mail(number))
    running = start_listener(use_notify=use_notify)
    running.add(watch(dovecot, login))
    assert listening(running, login, 1 if use_notify else 2)
    with dovecot.client(login) as client:
        for folder in ("INBOX", dovecot.sent_folder):
            client.select_folder(folder)
            client.delete_messages(client.search("ALL")[:2])
            client.expunge()
    time.sleep(2.5)
    assert signals.count(login) == 0
    # The listener still counts right: the next mail is signalled.
    dovecot.append(login, "INBOX", mail(9))
    assert signals.wait(login, 1) is not None


# ----------------------------------------------------------------------
# Held for long: IDLE renewed, a silent server given up, a dropped one reconnected
# ----------------------------------------------------------------------


def test_after_idle_is_renewed_new_mail_is_still_signalled(dovecot, login, signals, start_listener):
    credential = Credential()
    with FaultProxy(("127.0.0.1", dovecot.ssl_port)) as proxy:
        running = start_listener(reidle_interval=1.0, answer_timeout=2.0)
        running.add(watch(dovecot, login, credential, port=proxy.port))
        assert listening(running, login, 1)
        commands = len([r for r in proxy.record() if r.direction == "client"])
        time.sleep(3.5)
        renewals = len([r for r in proxy.record() if r.direction == "client"]) - commands
        assert renewals >= 2, "DONE + IDLE sent again about every second"
        assert running.status(login).state == listener.LISTENING
        assert len(credential.calls) == 1, "the same connection all along"
        appended = time.monotonic()
        dovecot.append(login, "INBOX", mail(1))
        signalled = signals.wait(login, 1)
        assert signalled is not None and signalled - appended < SOON


def test_a_server_gone_silent_is_given_up_and_reconnected(dovecot, login, signals, start_listener):
    credential = Credential()
    with FaultProxy(("127.0.0.1", dovecot.ssl_port)) as proxy:
        running = start_listener(reidle_interval=1.0, answer_timeout=1.0, retry_delay=lambda failures: 1.0)
        running.add(watch(dovecot, login, credential, port=proxy.port))
        assert listening(running, login, 1)
        proxy.blackhole()  # no answer, no FIN: a server behind a dead network
        assert until(lambda: running.status(login).state != listener.LISTENING, timeout=5)
        assert running.held() == 0
        proxy.pass_through()
        assert listening(running, login, 1)
        assert len(credential.calls) >= 2
        dovecot.append(login, "INBOX", mail(1))
        assert signals.wait(login, 1) is not None


def test_when_the_server_drops_every_connection_the_listener_comes_back(
    dovecot, fresh_logins, signals, start_listener
):
    logins = [next(fresh_logins), next(fresh_logins)]
    credentials = {each: Credential() for each in logins}
    running = start_listener(reconnect_spread=1.0)
    for each in logins:
        running.add(watch(dovecot, each, credentials[each]))
    assert all(listening(running, each, 1) for each in logins)
    time.sleep(QUICK["steady_after"] + 0.2)  # listened long enough: a drop is not a failure

    kicked = doveadm(dovecot, "kick", "*")  # every connection of the server
    assert kicked.returncode == 0, kicked.stderr
    assert until(lambda: all(len(credentials[each].calls) == 2 for each in logins), timeout=5)
    assert all(listening(running, each, 1) for each in logins)
    for each in logins:
        assert running.status(each).error is None, "reconnected at once, not after the back-off"
        dovecot.append(each, "INBOX", mail(1))
    assert all(signals.wait(each, 1) is not None for each in logins)


def test_mail_that_came_while_the_connection_was_down_is_signalled_on_reconnect(
    dovecot, login, signals, start_listener
):
    with FaultProxy(("127.0.0.1", dovecot.ssl_port)) as proxy:
        running = start_listener(reconnect_spread=0.1, retry_delay=lambda failures: 0.5)
        running.add(watch(dovecot, login, port=proxy.port))
        assert listening(running, login, 1)
        time.sleep(QUICK["steady_after"] + 0.2)
        proxy.refuse()
        proxy.cut_all()
        assert until(lambda: running.held() == 0, timeout=3)
        dovecot.append(login, dovecot.sent_folder, mail(1))  # while nobody listens
        proxy.refuse(False)
        assert signals.wait(login, 1, timeout=10) is not None
        assert listening(running, login, 1)


# ----------------------------------------------------------------------
# Failing logins, servers without IDLE
# ----------------------------------------------------------------------


def test_a_refused_password_is_tried_again_only_after_the_retry_delay(signals, caplog):
    login = "anna.recruiter@example.test"
    credential = Credential(WRONG_PASSWORD)
    asked = []

    def retry_delay(failures):
        asked.append(failures)
        return 3.0

    caplog.set_level(logging.DEBUG)
    with Dovecot({login: PASSWORD}) as server:
        running = listener.Listener(signals, retry_delay=retry_delay).start()
        try:
            running.add(watch(server, login, credential))
            assert until(lambda: running.status(login).state == listener.WAITING)
            status = running.status(login)
            assert status.error == str(errors.AuthenticationFailed())
            assert status.until > time.time() + 2
            time.sleep(2.0)
            assert len(credential.calls) == 1, "no second login within the retry delay"
            assert until(lambda: len(credential.calls) == 2, timeout=10)
            assert credential.calls[1] - credential.calls[0] >= 3.0
            assert until(lambda: asked == [1, 2])
            assert running.held() == 0
        finally:
            running.stop()
        assert dovecot_log(server).count("auth failed") == 2
    shown = caplog.text + repr(status)
    assert WRONG_PASSWORD not in shown
    assert PASSWORD not in shown


def test_a_server_without_idle_is_left_to_the_cycle(signals, start_listener):
    script = {"LOGIN": "OK Logged in", "CAPABILITY": ("* CAPABILITY IMAP4rev1 AUTH=PLAIN", "OK Done")}
    with FakeImapServer(script=script) as fake:
        running = start_listener()
        running.add(
            listener.Watch(
                "fake",
                connection.Server(fake.host, fake.port, "ssl"),
                "anna",
                Credential(),
                ca_file=fake.ca_file,
                allow_private=True,
            )
        )
        assert until(lambda: running.status("fake").state == listener.UNSUPPORTED)
        assert until(lambda: "LOGOUT" in fake.commands, timeout=3)
        time.sleep(1.0)
        assert running.held() == 0
        assert running.status("fake").connections == 0
        assert fake.connections == 1, "not tried again and again"
        assert "IDLE" not in fake.commands and "EXAMINE" not in fake.commands


# ----------------------------------------------------------------------
# Watches removed and changed; credentials fresh for each connection
# ----------------------------------------------------------------------


def test_a_removed_mailbox_is_logged_out_and_no_longer_signalled(
    dovecot, fresh_logins, signals, start_listener
):
    kept, removed = next(fresh_logins), next(fresh_logins)
    running = start_listener(use_notify=False)
    for each in (kept, removed):
        running.add(watch(dovecot, each))
    assert listening(running, kept, 2) and listening(running, removed, 2)
    running.remove(removed)
    assert until(lambda: running.held() == 2, timeout=2)
    assert running.status(removed) is None
    assert until(lambda: dovecot_log(dovecot).count(f"imap({removed})") == 2, timeout=3)
    lines = [line for line in dovecot_log(dovecot).splitlines() if f"imap({removed})" in line]
    assert all("Logged out" in line for line in lines), lines
    dovecot.append(removed, "INBOX", mail(1))
    dovecot.append(kept, "INBOX", mail(1))
    assert signals.wait(kept, 1) is not None
    time.sleep(1.0)
    assert signals.count(removed) == 0


def test_a_new_password_reconnects_and_the_same_settings_do_not(dovecot, login, signals, start_listener):
    old = Credential()
    running = start_listener()
    running.add(watch(dovecot, login, old))
    assert listening(running, login, 1)
    running.update(watch(dovecot, login, Credential()))  # the same settings, re-read
    time.sleep(1.0)
    assert len(old.calls) == 1 and running.held() == 1

    dovecot.users[login] = NEW_PASSWORD
    dovecot.write_passwd()
    time.sleep(1.1)  # Dovecot re-reads its passwd file at most once a second
    new = Credential(NEW_PASSWORD)
    running.update(watch(dovecot, login, new, revision=2))
    assert until(lambda: len(new.calls) == 1, timeout=3)
    assert listening(running, login, 1)
    assert running.held() == 1, "the old connection was let go"
    dovecot.append(login, "INBOX", mail(1))
    assert signals.wait(login, 1) is not None


def test_each_new_connection_gets_a_fresh_access_token(signals, start_listener):
    anna = "anna@example.test"
    with OAuthServer([anna]) as oauth, Dovecot({}, oauth=oauth) as server:
        tokens = []

        def credential():
            tokens.append(oauth.issue(anna)["access_token"])
            return {"access_token": tokens[-1]}

        running = start_listener()
        running.add(watch(server, anna, credential))
        assert listening(running, anna, 1)
        time.sleep(QUICK["steady_after"] + 0.2)
        oauth.expire(anna)  # the held connection outlives its token...
        server.append(anna, "INBOX", mail(1))
        assert signals.wait(anna, 1) is not None
        assert running.held() == 1 and len(tokens) == 1

        assert doveadm(server, "kick", anna).returncode == 0
        assert until(lambda: len(tokens) == 2, timeout=5)  # ...a new one asks for a fresh one
        assert listening(running, anna, 1)
        assert tokens[0] != tokens[1] and not oauth.active(tokens[0]) and oauth.active(tokens[1])
        time.sleep(QUICK["coalesce"])
        server.append(anna, "INBOX", mail(2))
        assert signals.wait(anna, 2) is not None
