"""Sign in with Microsoft or Google: the test OAuth2 server (harness.oauth_server) plays the
provider, Dovecot checks the access tokens against it (XOAUTH2), and so does the SMTP server."""

import base64
from datetime import timedelta
from unittest.mock import patch
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from odoo import fields, modules
from odoo.exceptions import UserError
from odoo.tests import HttpCase, new_test_user, tagged

from ..mailbox_client import connection, errors, oauth
from ..models import cats_mail_sync_sign_in as sign_in_module
from ..models.cats_mail_sync_sign_in import StateRefused
from . import test_secrets
from .common import ANNA, BERT, MailboxCase, allow_local_servers, make_mail, registry_in_test_mode
from .harness.dovecot import Dovecot
from .harness.oauth_server import OAuthServer
from .harness.recorder import Recorder
from .harness.smtp_server import SMTPTestServer
from .test_setup import seen

CANDIDATE = "carla.candidate@example.com"
TESS = "tess@recruit.example.test"


def point_at(env, oauth_server, dovecot, smtp):
    """This database's sign-in: the test provider as both Microsoft and Google, its mail
    servers the test servers (as a national cloud would set them)."""
    params = env["ir.config_parameter"].sudo()
    for prefix in ("google_gmail", "microsoft_outlook"):
        params.set_param(f"{prefix}_client_id", oauth_server.client_id)
        params.set_param(f"{prefix}_client_secret", oauth_server.client_secret)
    params.set_param("microsoft_outlook.endpoint", oauth_server.base_url)
    params.set_param("cats_mail_sync.google_endpoint", oauth_server.base_url)
    for code, smtp_port in (("microsoft", smtp.starttls_port), ("google", smtp.ssl_port)):
        params.set_param(f"cats_mail_sync.{code}_imap_server", f"{dovecot.host}:{dovecot.ssl_port}")
        params.set_param(f"cats_mail_sync.{code}_smtp_server", f"localhost:{smtp_port}")


def follow_to_provider(url, ca_file):
    """The browser at the provider (which approves at once): the code and state it sends back."""
    response = requests.get(url, verify=ca_file, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    return location, query["state"][0], query["code"][0]


@tagged("post_install", "-at_install")
class TestSignIn(MailboxCase):
    @classmethod
    def setUpClass(cls):
        cls.oauth = OAuthServer([ANNA, BERT]).__enter__()
        cls.addClassCleanup(cls.oauth.__exit__, None, None, None)
        super().setUpClass()
        cls.smtp = SMTPTestServer(oauth=cls.oauth).__enter__()
        cls.addClassCleanup(cls.smtp.__exit__, None, None, None)
        point_at(cls.env, cls.oauth, cls.imap, cls.smtp)
        cls.candidate.email_from = CANDIDATE
        # A refresh is kept in a transaction of its own (registry.cursor()): in test mode,
        # as under HttpCase, that is a savepoint of the test's transaction.
        registry_in_test_mode(cls)

    @classmethod
    def imap_options(cls):
        return {"oauth": cls.oauth}

    def setUp(self):
        super().setUp()
        self.oauth.requests.clear()  # each test counts what the provider was asked from its start

    def start(self, user, provider="office365"):
        setup = (
            self.env["cats_mail_sync.setup"]
            .with_user(user)
            .create({"email": user.email, "provider": provider})
        )
        action = setup.action_sign_in()
        self.assertEqual(action["type"], "ir.actions.act_url")
        _location, state, code = follow_to_provider(action["url"], self.oauth.ca_file)
        return setup, state, code

    def sign_in(self, user, provider="office365"):
        """The whole sign-in as ``user``; the assistant, back from the provider."""
        setup, state, code = self.start(user, provider)
        checked = self.env["cats_mail_sync.sign_in"].with_user(user)._check(state)
        self.assertEqual(checked, setup)
        setup._signed_in(state, code)
        return setup

    def connect(self, user, provider="office365"):
        """Signed in, tested, saved and activated, as ``user`` does it."""
        setup = self.sign_in(user, provider)
        setup.action_test()
        setup.action_save()
        user.with_user(user).action_mailbox_activate()
        return user._mailbox_sign_in()

    def imap_credentials(self, user):
        """What ``user``'s mailbox logs in to its IMAP server with."""
        server = connection.Server(user.mailbox_imap_host, user.mailbox_imap_port, user.mailbox_imap_security)
        return self.env["cats_mail_sync.credentials"]._for(user, server, user.mailbox_login)

    def token_requests(self, grant_type=None):
        return [
            r
            for r in self.oauth.requests
            if r.path == "/token" and (grant_type is None or r.params.get("grant_type") == grant_type)
        ]

    def notifications(self, user):
        return self.env["mail.message"].search(
            [("partner_ids", "in", user.partner_id.ids), ("subject", "=", "Your mailbox is no longer logged")]
        )

    def test_sign_in_with_microsoft_then_inbox_and_sent_are_logged(self):
        setup = self.sign_in(self.anna)
        self.assertEqual(setup.signed_in, "microsoft")
        self.assertEqual((setup.email, setup.login), (ANNA, ANNA))
        self.assertEqual((setup.imap_host, setup.imap_port), (self.imap.host, self.imap.ssl_port))
        self.assertEqual((setup.smtp_port, setup.smtp_security), (self.smtp.starttls_port, "starttls"))
        self.assertIn("Signed in with Microsoft as anna@recruit.example.test", setup.detection_log)
        exchange = self.token_requests("authorization_code")[-1]
        self.assertEqual(len(exchange.params["code_verifier"]), 64, "PKCE, S256")

        setup.action_test()
        self.assertIn("IMAP: signed in; found Inbox and your Sent folder", setup.test_result)
        self.assertIn("SMTP: signed in over an encrypted connection", setup.test_result)
        setup.action_save()
        anna = self.anna.with_user(self.anna)
        self.assertEqual(anna.mailbox_oauth_provider, "microsoft")
        self.assertEqual(anna.mailbox_signed_in_as, "Signed in with Microsoft as anna@recruit.example.test")
        self.assertFalse(self.env["cats_mail_sync.secret"]._has(self.anna, "cats_mailbox_password"))
        self.assertEqual(self.anna.mailbox_state, "inactive")
        anna.action_mailbox_activate()
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertTrue(self.anna.mailbox_email_confirmed, "Microsoft said who signed in")

        received = make_mail(CANDIDATE, ANNA, subject="My CV", message_id="<cv@carla>")
        sent = make_mail(ANNA, CANDIDATE, subject="Interview", message_id="<interview@anna>")
        self.deliver(self.anna, received)
        self.deliver(self.anna, sent, folder="Sent")
        introspected = sum(r.path == "/introspect" for r in self.oauth.requests)
        self.assertEqual(self.sync(self.anna), 2)
        self.assertGreater(sum(r.path == "/introspect" for r in self.oauth.requests), introspected)
        self.assertEqual(len(self.logged(self.candidate, "<cv@carla>")), 1)
        self.assertEqual(len(self.logged(self.candidate, "<interview@anna>")), 1)
        self.assertEqual(self.sync(self.anna), 0, "each mail once")

    def test_configure_on_a_mailbox_that_signs_in_opens_on_its_saved_settings(self):
        self.connect(self.anna)
        action = self.anna.with_user(self.anna).action_mailbox_configure()
        self.assertEqual(action["target"], "new")
        setup = self.env["cats_mail_sync.setup"].with_user(self.anna).browse(action["res_id"])
        self.assertEqual(
            (setup.step, setup.provider, setup.signed_in, setup.email, setup.login, setup.imap_host),
            ("detected", "office365", "microsoft", ANNA, ANNA, self.anna.mailbox_imap_host),
        )
        # As a password mailbox reopens: no password asked, what is kept said, its buttons once (in
        # the dialog's footer).
        screen = seen(setup)
        self.assertIn("Your sign-in is kept: click Back only to sign in again", screen.text)
        self.assertNotIn("password", screen.fields)
        self.assertFalse(setup.stops_logging)
        self.assertEqual(screen.buttons, [("Test connection", True), ("Save", False), ("Back", False)])
        # The dialog stays open on the test's result; Save keeps the sign-in and goes on logging.
        self.assertEqual(setup.action_test()["res_id"], setup.id)
        self.assertTrue(setup.tested, setup.test_result)
        setup.action_save()
        self.assertEqual((self.anna.mailbox_state, self.anna.mailbox_oauth_provider), ("active", "microsoft"))
        # Back: the first step, to sign in again (or with another account).
        setup = (
            self.env["cats_mail_sync.setup"]
            .with_user(self.anna)
            .browse(self.anna.with_user(self.anna).action_mailbox_configure()["res_id"])
        )
        setup.action_back()
        self.assertEqual((setup.step, setup.signed_in, setup.sign_in_with), ("provider", False, "microsoft"))
        self.assertIn(("Sign in with Microsoft", True), seen(setup).buttons)

    def test_sign_in_with_google_and_deactivate_revokes(self):
        token = self.connect(self.anna, "gmail")
        self.assertEqual((token.provider, token.address), ("google", ANNA))
        self.assertEqual(self.anna.mailbox_smtp_security, "ssl")
        authorize = [r for r in self.oauth.requests if r.path == "/authorize"][-1]
        self.assertEqual(authorize.params["access_type"], "offline")
        self.assertIn("https://mail.google.com/", authorize.params["scope"])
        self.assertEqual(authorize.params["code_challenge_method"], "S256")
        refresh = self.env["cats_mail_sync.secret"]._get(token, "cats_refresh_token")

        self.anna.with_user(self.anna).action_mailbox_deactivate()
        self.assertFalse(token.exists())
        self.assertEqual(self.anna.mailbox_state, "not_configured")
        self.assertIn("/revoke", [r.path for r in self.oauth.requests])
        with self.assertRaises(errors.SignInExpired):
            oauth.refresh(
                self.env["cats_mail_sync.sign_in"]._provider("google"),
                self.env["cats_mail_sync.sign_in"]._client("google"),
                refresh,
                ca_file=self.oauth.ca_file,
            )

    def test_a_state_that_is_not_this_user_s_valid_unused_one_is_refused(self):
        sign_in = self.env["cats_mail_sync.sign_in"]
        setup, state, _code = self.start(self.anna)
        payload, signature = state.rsplit(".", 1)
        _setup_id, uid, issued, nonce = payload.split(".", 3)
        forged_setup = self.env["cats_mail_sync.setup"].with_user(self.anna).create({"email": ANNA})
        refused = {
            "tampered": f"{payload}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}",
            "another assistant": f"{forged_setup.id}.{uid}.{issued}.{nonce}.{signature}",
            "another user's": state,
            "garbage": "not-a-state",
            "none": None,
        }
        for name, value in refused.items():
            who = self.bert if name == "another user's" else self.anna
            with self.subTest(name), self.assertRaises(StateRefused):
                sign_in.with_user(who)._check(value)
        with (
            patch.object(sign_in_module.time, "time", return_value=int(issued) + 601),
            self.assertRaises(StateRefused),
        ):
            sign_in.with_user(self.anna)._check(state)
        self.assertEqual(sign_in.with_user(self.anna)._check(state), setup, "still valid after all that")
        with self.assertRaises(StateRefused):
            sign_in.with_user(self.anna)._check(state)  # used
        self.assertFalse(setup.signed_in)
        self.assertFalse(self.env["cats_mail_sync.token"].search([]))

    def test_access_token_is_refreshed_before_it_expires_and_the_rotated_token_kept(self):
        token = self.connect(self.anna)
        refreshed = len(self.token_requests("refresh_token"))  # by the tests before, on this provider
        store = self.env["cats_mail_sync.secret"]
        first_access = store._get(token, "cats_access_token")
        first_refresh = store._get(token, "cats_refresh_token")
        self.assertEqual(self.imap_credentials(self.anna), {"access_token": first_access}, "cached")
        self.assertEqual(len(self.token_requests("refresh_token")), refreshed)

        token.expires_at = fields.Datetime.now() + timedelta(minutes=4)
        access = self.imap_credentials(self.anna)["access_token"]
        self.assertNotEqual(access, first_access)
        self.assertEqual(len(self.token_requests("refresh_token")), refreshed + 1)
        self.assertNotEqual(store._get(token, "cats_refresh_token"), first_refresh, "rotated")
        self.assertGreater(token.expires_at, fields.Datetime.now() + timedelta(minutes=50))
        self.assertEqual(self.imap_credentials(self.anna)["access_token"], access)
        self.assertEqual(len(self.token_requests("refresh_token")), refreshed + 1)

        self.deliver(self.anna, make_mail(CANDIDATE, ANNA, message_id="<after-refresh@carla>"))
        self.assertEqual(self.sync(self.anna), 1)

    def test_an_access_token_refused_before_its_time_is_refreshed_once_and_logging_goes_on(self):
        token = self.connect(self.anna)
        refreshed = len(self.token_requests("refresh_token"))
        store = self.env["cats_mail_sync.secret"]
        refused = store._get(token, "cats_access_token")
        self.oauth.expire(ANNA)  # ended by the provider; Odoo still takes it for valid an hour
        self.deliver(self.anna, make_mail(CANDIDATE, ANNA, message_id="<token-refused@carla>"))
        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(len(self.token_requests("refresh_token")), refreshed + 1, "refreshed once")
        self.assertNotEqual(store._get(token, "cats_access_token"), refused)
        self.assertEqual((self.anna.mailbox_state, self.anna.mailbox_error), ("active", False))
        self.assertFalse(self.notifications(self.anna))

    def test_withdrawn_sign_in_stops_the_mailbox_and_tells_the_recruiter_once(self):
        token = self.connect(self.anna)
        self.oauth.revoke(ANNA)
        token.expires_at = fields.Datetime.now()
        self.sync(self.anna)
        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertIn("Sign in again", self.anna.mailbox_error)
        self.assertEqual(len(self.notifications(self.anna)), 1)
        refreshes = len(self.token_requests())
        self.run_cron()
        self.run_cron()
        self.assertEqual(len(self.token_requests()), refreshes, "no login is tried with a dead sign-in")
        self.assertEqual(len(self.notifications(self.anna)), 1)

        # Signing in again resumes from where the mailbox stopped.
        self.deliver(self.anna, make_mail(CANDIDATE, ANNA, message_id="<while-stopped@carla>"))
        action = self.anna.with_user(self.anna).action_mailbox_sign_in()
        _location, state, code = follow_to_provider(action["url"], self.oauth.ca_file)
        setup = self.env["cats_mail_sync.sign_in"].with_user(self.anna)._check(state)
        setup._signed_in(state, code)
        setup.action_save()
        self.anna.with_user(self.anna).action_mailbox_activate()
        self.assertEqual(self.sync(self.anna), 1)
        self.assertEqual(len(self.logged(self.candidate, "<while-stopped@carla>")), 1)

    def test_provider_down_is_network_trouble_retried_later(self):
        token = self.connect(self.anna)
        self.env["ir.config_parameter"].sudo().set_param("microsoft_outlook.endpoint", "https://127.0.0.1:9/")
        token.expires_at = fields.Datetime.now()
        self.sync(self.anna)
        self.assertEqual(self.anna.mailbox_state, "active")
        self.assertEqual(self.anna.mailbox_failures, 1)
        self.assertIn("could not be reached", self.anna.mailbox_error)
        self.assertFalse(self.notifications(self.anna))

    def test_mail_sent_from_odoo_leaves_through_smtp_xoauth2(self):
        self.connect(self.anna)
        candidate = self.candidate.with_user(self.anna)
        self.env["ir.mail_server"].search([("mailbox_user_id", "=", False)]).active = False
        with patch.object(modules.module, "current_test", False):
            candidate.message_post(
                body="Could you come in on Tuesday?",
                subject="Interview",
                partner_ids=candidate.partner_id.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
            )
            self.env["mail.mail"].sudo().search([("state", "=", "outgoing")]).send()
        sent = [m for m in self.smtp.messages if CANDIDATE in m.rcpt_tos]
        self.assertEqual([(m.mail_from, m.login) for m in sent], [(ANNA, ANNA)])
        self.assertIn("XOAUTH2", {attempt.mechanism for attempt in self.smtp.auth_attempts})

    def test_a_sign_in_no_mailbox_took_up_is_forgotten_after_half_an_hour(self):
        used = self.connect(self.anna)
        self.sign_in(self.bert, "gmail")  # never saved
        unused = self.env["cats_mail_sync.token"].search([("user_id", "=", self.bert.id)])
        self.assertTrue(unused)
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE cats_mail_sync_token SET write_date = now() at time zone 'UTC' - interval '31 minutes'"
        )
        self.env.invalidate_all()
        before = len(self.oauth.requests)
        self.run_cron()
        self.assertFalse(unused.exists())
        self.assertTrue(used.exists())
        revoked = [r.params["token"] for r in self.oauth.requests[before:] if r.path == "/revoke"]
        self.assertEqual(len(revoked), 1)
        sign_in = self.env["cats_mail_sync.sign_in"]
        with self.assertRaises(errors.SignInExpired):
            oauth.refresh(
                sign_in._provider("google"), sign_in._client("google"), revoked[0], ca_file=self.oauth.ca_file
            )

    def test_tokens_are_kept_encrypted_and_read_back_nowhere(self):
        token = self.connect(self.anna)
        store = self.env["cats_mail_sync.secret"]
        secrets = [store._get(token, "cats_refresh_token"), store._get(token, "cats_access_token")]
        self.assertEqual(test_secrets.TestSecrets.find_in_database(self, secrets), [])
        admin = self.env.ref("base.user_admin")
        for who in (self.anna, admin):
            self.assertNotIn(secrets[0], repr(token.with_user(admin).read()))
            fields_read = ["mailbox_password", "mailbox_oauth_provider", "mailbox_signed_in_as"]
            self.assertNotIn(secrets[1], repr(self.anna.with_user(who).read(fields_read)))

    def recorder(self, protocol="imap"):
        server = Recorder(protocol).__enter__()
        self.addCleanup(server.__exit__, None, None, None)
        return server

    def test_a_sign_in_goes_only_to_its_provider_s_servers_as_the_address_signed_in(self):
        imap = self.recorder()
        token = self.connect(self.anna)
        # In the database itself: the mailbox points elsewhere, still signing in.
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE res_users SET mailbox_imap_port = %s WHERE id = %s", [imap.port, self.anna.id]
        )
        self.anna.invalidate_recordset()
        notice = self.anna.with_user(self.anna).action_mailbox_sync()["params"]
        self.assertEqual(notice["type"], "danger")
        self.assertIn("only goes to Microsoft's own mail servers", notice["message"])
        self.assertEqual(self.anna.mailbox_state, "error")
        self.assertEqual(imap.connections, 0, imap.received())

        # Over RPC, by an administrator: the sign-in is forgotten, and the profile says so.
        self.anna.with_user(self.env.ref("base.user_admin")).write({"mailbox_imap_port": imap.port})
        self.assertFalse(token.exists())
        self.assertFalse(self.anna.mailbox_oauth_provider)
        self.assertEqual(self.anna.mailbox_state, "not_configured")
        self.assertIn("The server or login changed: sign in again", self.anna.mailbox_error)
        self.run_cron()
        self.assertEqual(imap.connections, 0, imap.received())

    def test_the_assistant_uses_a_sign_in_only_with_the_provider_s_servers(self):
        imap = self.recorder()
        setup = self.sign_in(self.anna)
        for change in ({"imap_port": imap.port}, {"login": BERT}):
            with self.subTest(change=change):
                saved = {name: setup[name] for name in change}
                setup.write(change)
                with self.assertRaisesRegex(UserError, "only goes to Microsoft's own mail servers"):
                    setup.action_test()
                with self.assertRaisesRegex(UserError, "only goes to Microsoft's own mail servers"):
                    setup.action_save()
                setup.write(saved)
        self.assertEqual(imap.connections, 0, imap.received())
        self.assertFalse(self.anna.mailbox_oauth_provider, "nothing was saved")
        setup.action_test()
        self.assertIn("IMAP: signed in", setup.test_result)


@tagged("post_install", "-at_install")
class TestSignInInTheBrowser(HttpCase):
    """The provider sends the browser back to Odoo: the callback page, then the whole tour."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.oauth = OAuthServer([TESS, BERT]).__enter__()
        cls.addClassCleanup(cls.oauth.__exit__, None, None, None)
        cls.imap = Dovecot({}, oauth=cls.oauth).start()
        cls.addClassCleanup(cls.imap.stop)
        cls.smtp = SMTPTestServer(oauth=cls.oauth).__enter__()
        cls.addClassCleanup(cls.smtp.__exit__, None, None, None)
        allow_local_servers(cls.env, cls.imap.ca_file)
        point_at(cls.env, cls.oauth, cls.imap, cls.smtp)
        groups = "base.group_user,hr_recruitment.group_hr_recruitment_user"
        cls.tess = new_test_user(
            cls.env,
            login="tess",
            password="tess-odoo-password",
            email=TESS,
            tz="Europe/Amsterdam",
            groups=groups,
        )
        cls.bert = new_test_user(
            cls.env, login="bert", password="bert-odoo-password", email=BERT, groups=groups
        )

    def fetch_proxy(self, url):
        """The browser's requests beyond Odoo: those to the test provider reach it (over TLS
        checked against the run's CA, as a browser checks Microsoft's), the rest get a 404."""
        if not url.startswith(self.oauth.base_url):
            return super().fetch_proxy(url)
        response = requests.get(url, verify=self.oauth.ca_file, allow_redirects=False, timeout=10)
        return {
            "body": base64.b64encode(response.content).decode(),
            "responseCode": response.status_code,
            "responseHeaders": [{"name": name, "value": value} for name, value in response.headers.items()],
        }

    def start(self, user):
        setup = (
            self.env["cats_mail_sync.setup"]
            .with_user(user)
            .create({"email": user.email, "provider": "office365"})
        )
        return setup, follow_to_provider(setup.action_sign_in()["url"], self.oauth.ca_file)[0]

    def test_callback_signs_in_once_and_only_its_own_user(self):
        setup, callback = self.start(self.tess)
        self.assertTrue(callback.startswith(self.base_url() + "/cats_mail_sync/sign_in?"))
        self.authenticate("bert", "bert-odoo-password")
        response = self.url_open(callback)
        self.assertEqual(response.status_code, 400)
        self.assertIn("not valid", response.text)

        setup, callback = self.start(self.tess)
        self.authenticate("tess", "tess-odoo-password")
        response = self.url_open(callback, allow_redirects=False)
        self.assertEqual(response.status_code, 303)
        self.assertTrue(
            response.headers["Location"].endswith(
                f"/odoo/action-cats_mail_sync.cats_mail_sync_setup_action/{setup.id}"
            )
        )
        self.assertEqual((setup.signed_in, setup.email), ("microsoft", TESS))
        replayed = self.url_open(callback)
        self.assertEqual(replayed.status_code, 400)
        self.assertIn("already used", replayed.text)

        _setup, callback = self.start(self.tess)
        state = parse_qs(urlsplit(callback).query)["state"][0]
        cancelled = f"/cats_mail_sync/sign_in?{urlencode({'state': state, 'error': 'access_denied'})}"
        response = self.url_open(cancelled)
        self.assertEqual(response.status_code, 400)
        self.assertIn("cancelled or refused", response.text)

    def test_recruiter_signs_in_with_microsoft_in_the_browser(self):
        self.assertFalse(self.tess.has_group("base.group_system"))
        self.start_tour("/odoo", "cats_mail_sync_sign_in_tour", login="tess", timeout=120)
        self.assertEqual(self.tess.mailbox_state, "active")
        self.assertEqual(self.tess.mailbox_oauth_provider, "microsoft")
        self.assertEqual(self.tess.mailbox_email, TESS)
        self.assertTrue(self.tess.mailbox_email_confirmed)
