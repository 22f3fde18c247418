"""Screenshots of every screen of cats_mail_sync, in English and Dutch, as an administrator and as a
recruiter without admin rights.

Run by scripts/screenshots with Odoo's Python: ``screenshots.py CONFIG DATABASE WORKDIR OUTDIR``, on a
database with the module and its demo data. Fills the demo mailbox (scripts/demo_mailbox.py), makes a
recruiter, Rita, with a mailbox of her own, starts Odoo and headless Chromium (driven through the
Chrome DevTools Protocol), and writes one PNG per screen, user and language to OUTDIR.
"""

import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import requests
import websocket

import odoo
import odoo.api
import odoo.modules.registry
import odoo.tools
from odoo import SUPERUSER_ID, Command, api

# The demo's mailbox, the test servers (harness) and the errors a recruiter reads (framework-free).
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cats_mail_sync" / "tests"))
import demo_mailbox

from harness.dovecot import Dovecot
from mailbox_client import errors, oauth

RITA = "rita@recruit.example.test"
RITA_PASSWORD = "rita-mailbox-password"
# A recruiter whose mailbox signs in with Microsoft (set up, not active: nothing is sent to Microsoft).
OLGA = "olga@contoso.example.test"
LANGUAGES = ("en_US", "nl_NL")
WIDTH, HEIGHT = 1440, 1000


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    """Headless Chromium, one page, driven through the Chrome DevTools Protocol."""

    def __init__(self, workdir):
        port = free_port()
        binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        self.process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={workdir}/chromium",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = requests.get(f"http://127.0.0.1:{port}/json", timeout=5).json()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        url = next(page["webSocketDebuggerUrl"] for page in pages if page["type"] == "page")
        self.socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.calls = 0
        self.send("Page.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def send(self, method, **params):
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            answer = json.loads(self.socket.recv())
            if answer.get("id") == self.calls:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, selector, timeout=45):
        """Until ``selector`` (CSS, with :has()) matches a visible element and Odoo is not loading."""
        condition = (
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return !!(e && e.offsetParent !== null)"
            " && !document.querySelector('.o_loading_indicator'); })()"
        )
        deadline = time.monotonic() + timeout
        while not self.evaluate(condition):
            if time.monotonic() > deadline:
                self.shot(Path(tempfile.gettempdir()) / "screenshots-timeout.png")  # what was there instead
                raise TimeoutError(f"{selector} did not appear on {self.evaluate('location.href')}")
            time.sleep(0.2)
        time.sleep(0.6)  # animations (dialogs fade in), late images

    def wait_gone(self, selector, timeout=45):
        deadline = time.monotonic() + timeout
        while self.evaluate(f"!!document.querySelector({json.dumps(selector)})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{selector} is still there")
            time.sleep(0.2)

    def go(self, url, selector):
        self.send("Page.navigate", url=url)
        self.wait(selector)

    def click(self, selector, then):
        self.wait(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self.wait(then)

    def type(self, selector, text):
        """Type into an input as a person does: Odoo's fields listen to input and change events."""
        self.wait(selector)
        self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" e.focus(); e.value = {json.dumps(text)};"
            " e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def shot(self, path):
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"  {path.name}")

    def close(self):
        self.socket.close()
        self.process.terminate()
        self.process.wait(10)


def set_up(registry, workdir, rita_dovecot):
    """Dutch, the recruiter Rita (no admin rights), and a run stopped by a fault in Odoo; the id of
    the candidate whose mail the demo mailbox logged."""
    from odoo.addons.cats_mail_sync import series

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["res.lang"]._activate_lang("nl_NL")
        modules = env["ir.module.module"].search([("state", "=", "installed")]).mapped("name")
        env["ir.module.module"]._load_module_terms(modules, ["nl_NL"], overwrite=True)
        env["res.users"].with_context(no_reset_password=True).create(
            {
                "name": "Rita Recruiter",
                "login": "rita",
                "password": "rita",
                "email": RITA,
                **series.user_groups(
                    env.ref("base.group_user") | env.ref("hr_recruitment.group_hr_recruitment_user")
                ),
            }
        )
        # Rita's mailbox is on a Dovecot of its own, under the test servers' CA.
        bundle = workdir / "ca-bundle.pem"
        demo_ca = env["ir.config_parameter"].get_param("cats_mail_sync.ca_file")
        bundle.write_text(Path(demo_ca).read_text() + Path(rita_dovecot.ca_file).read_text())
        env["ir.config_parameter"].set_param("cats_mail_sync.ca_file", str(bundle))
        # A run of the admin's mailbox stopped by a fault in Odoo, as the sync records it (its
        # sentence kept, read in the reader's language).
        from odoo.addons.cats_mail_sync.models.cats_mail_sync_run import note  # once Odoo is set up

        admin = env.ref("base.user_admin")
        unexpected = errors.UnexpectedError(kind="KeyError")
        env["cats_mail_sync.run"].create(
            {
                "user_id": admin.id,
                "folders": "INBOX, Sent",
                "unexpected": True,
                "error": str(unexpected),
                "notes": {
                    "error": [note(unexpected.message, **unexpected.params)],
                    "look_back_note": [],
                    "look_back_done": [],
                },
            }
        )
        # Olga's mailbox signs in with Microsoft: saved, its sign-in kept (never used here).
        olga = (
            env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": "Olga Recruiter",
                    "login": "olga",
                    "password": "olga",
                    "email": OLGA,
                    **series.user_groups(
                        env.ref("base.group_user") | env.ref("hr_recruitment.group_hr_recruitment_user")
                    ),
                }
            )
        )
        env["cats_mail_sync.token"]._keep(olga, "microsoft", oauth.Tokens("not-used", 3600, "not-used", OLGA))
        # A run of hers as the scheduled run records it, in English: she reads it in her language.
        expired = errors.SignInExpired(provider="Microsoft")
        history = note(
            "%(folder)s: earlier mail back to %(since)s is logged.", folder="INBOX", since=date(2026, 11, 7)
        )
        deleted = note("deleted before it could be read")
        env["cats_mail_sync.run"].create(
            {
                "user_id": olga.id,
                "folders": "INBOX, Sent Items",
                "looked_at": 1,
                "skipped": 1,
                "error": str(expired),
                "look_back_done": "INBOX: earlier mail back to 2026-11-07 is logged.",
                "notes": {
                    "error": [note(expired.message, **expired.params)],
                    "look_back_note": [],
                    "look_back_done": [history],
                },
                "skipped_ids": [
                    Command.create(
                        {
                            "folder": "INBOX",
                            "reason": "deleted before it could be read",
                            "reason_note": deleted,
                        }
                    )
                ],
            }
        )
        olga.write(
            {
                "mailbox_email": OLGA,
                "mailbox_login": OLGA,
                "mailbox_imap_host": "outlook.office365.com",
                "mailbox_imap_port": 993,
                "mailbox_smtp_host": "smtp.office365.com",
                "mailbox_smtp_port": 587,
                "mailbox_smtp_security": "starttls",
                "mailbox_oauth_provider": "microsoft",
            }
        )
        return env.ref("cats_mail_sync.demo_person_sofia").id


def set_lang(registry, login, lang):
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["res.users"].search([("login", "=", login)]).lang = lang
    # The server caches each user's context (their language): tell it, as a request would.
    registry.signal_changes()


def log_in(browser, base, login, password):
    # A fresh session: whatever the last screen left open (a dialog, a form being edited).
    # Odoo 18 remembers who logged in here ("Choose a user"): forget that too.
    browser.send("Network.clearBrowserCookies")
    browser.go(f"{base}/web/login", "a")  # a link shows on either form of the page
    browser.evaluate("localStorage.clear()")
    browser.go(f"{base}/web/login", "input[name=login]")
    browser.type("input[name=login]", login)
    browser.type("input[name=password]", password)
    browser.click("form.oe_login_form button[type=submit]", ".o_main_navbar")


def profile(browser, base):
    """My Profile, as a recruiter opens it: the user menu, then the Email tab."""
    browser.go(f"{base}/odoo", ".o_user_menu button")
    # The user menu's item: "settings" on Odoo 18, "preferences" on 19.
    item = "[data-menu=settings], [data-menu=preferences]"
    browser.click(".o_user_menu button", item)
    browser.click(item, ".o_form_view .o_notebook a.nav-link[name=cats_mail_sync]")
    browser.click(".o_notebook a.nav-link[name=cats_mail_sync]", ".o_field_widget[name=mailbox_state]")


def candidate_chatter(browser, base, candidate_id, path):
    """The candidate's chatter, its logged mails (mailbox line and recipients) at the top."""
    from odoo.addons.cats_mail_sync import series

    browser.go(f"{base}/odoo/{series.PERSON}/{candidate_id}", ".o-mail-Message")
    browser.evaluate("document.querySelector('.o-cats-mailbox-line')?.scrollIntoView({block: 'start'})")
    browser.shot(path)


def admin_screens(browser, base, out, lang, candidate_id):
    candidate_chatter(browser, base, candidate_id, out / f"candidate-chatter-admin-{lang}.png")
    profile(browser, base)
    browser.shot(out / f"profile-active-admin-{lang}.png")
    browser.click("button[name=action_mailbox_logged]", ".o_list_view .o_data_row")
    browser.shot(out / f"logged-mail-admin-{lang}.png")
    browser.click(".o_list_view .o_data_row button[name=action_mailbox_remove]", ".modal .modal-footer")
    browser.shot(out / f"logged-mail-remove-admin-{lang}.png")
    browser.click(".modal .modal-footer .btn-secondary", ".o_list_view .o_data_row")  # Cancel: kept
    profile(browser, base)
    browser.click("button[name=action_mailbox_runs]", ".o_list_view .o_data_row")
    browser.shot(out / f"sync-log-admin-{lang}.png")
    browser.click(
        ".o_list_view .o_data_row.text-danger td.o_data_cell",
        ".o_form_view .o_field_widget[name=error_shown]",
    )
    browser.shot(out / f"sync-log-run-admin-{lang}.png")
    browser.evaluate("history.back()")
    browser.click(
        ".o_list_view .o_data_row:nth-last-child(1 of .o_data_row) td.o_data_cell",
        ".o_form_view .o_field_widget[name=logged_message_ids]",
    )
    browser.shot(out / f"sync-log-run-logged-admin-{lang}.png")
    browser.go(f"{base}/odoo/settings", ".o_setting_container, .settings")
    browser.evaluate("document.querySelector('#cats_mail_sync_sign_in')?.scrollIntoView({block: 'center'})")
    time.sleep(0.5)
    browser.shot(out / f"settings-admin-{lang}.png")
    browser.evaluate("document.querySelector('#cats_mail_sync_listen')?.scrollIntoView({block: 'center'})")
    time.sleep(0.5)
    browser.shot(out / f"settings-listener-admin-{lang}.png")


def recruiter_screens(browser, base, out, lang, dovecot, candidate_id):
    profile(browser, base)
    browser.shot(out / f"profile-unconfigured-recruiter-{lang}.png")
    setup = ".o_cats_mail_sync_setup"
    browser.click(
        "button[name=action_mailbox_configure].btn-primary", f"{setup} .o_field_widget[name=provider]"
    )
    browser.shot(out / f"assistant-provider-recruiter-{lang}.png")
    # Signing in with Google is not set up in the demo: no button, a note on app passwords.
    browser.click(
        f"{setup} .o_field_widget[name=provider] input[data-value=gmail]",
        f"{setup} .o_field_widget[name=provider_note]",
    )
    browser.shot(out / f"assistant-gmail-recruiter-{lang}.png")
    recruiter_mistakes(browser, out, lang)
    browser.type(f"{setup} .o_field_widget[name=email] input", RITA)
    browser.click("button[name=action_detect]", f"{setup} .o_field_widget[name=detection_log] ul")
    browser.shot(out / f"assistant-detected-recruiter-{lang}.png")
    edit = "button[name=action_edit]"
    if browser.evaluate(f"!!document.querySelector({json.dumps(edit)})"):
        browser.click(edit, f"{setup} .o_field_widget[name=imap_host] input")
    browser.type(f"{setup} .o_field_widget[name=imap_host] input", dovecot.host)
    browser.type(f"{setup} .o_field_widget[name=imap_port] input", str(dovecot.ssl_port))
    browser.type(f"{setup} .o_field_widget[name=password] input", RITA_PASSWORD)
    browser.click("button[name=action_test]", f"{setup} .o_field_widget[name=test_result] p")
    browser.shot(out / f"assistant-tested-recruiter-{lang}.png")
    browser.evaluate("document.querySelector('button[name=action_save]').click()")
    browser.wait_gone(setup)
    # The profile opens again on its Email tab, with a notification saying what next.
    browser.wait(".o_notification")
    browser.wait(".o_notebook a.nav-link.active[name=cats_mail_sync]")
    browser.shot(out / f"profile-saved-recruiter-{lang}.png")
    browser.evaluate("document.querySelector('button[name=action_mailbox_activate]').click()")
    browser.wait(".o_field_widget[name=mailbox_state] .badge.text-bg-success")
    browser.shot(out / f"profile-active-recruiter-{lang}.png")
    recruiter_second_look(browser, base, out, lang)
    browser.click("button[name=action_mailbox_runs]", ".o_list_view")
    browser.shot(out / f"sync-log-recruiter-{lang}.png")
    profile(browser, base)
    browser.click("button[name=action_mailbox_logged]", ".o_list_view")
    browser.shot(out / f"logged-mail-recruiter-{lang}.png")
    recruiter_deactivates(browser, base, out, lang)
    # Leave the Preferences dialog closed, as a recruiter would.
    browser.evaluate("document.querySelectorAll('.modal .btn-close').forEach((button) => button.click())")
    browser.wait_gone(".modal .o_form_view")
    # A colleague's logged mail, as a Recruitment user reads it.
    candidate_chatter(browser, base, candidate_id, out / f"candidate-chatter-recruiter-{lang}.png")


def recruiter_mistakes(browser, out, lang):
    """Outlook.com while signing in with Microsoft is not set up; an address that is none (its part
    before the @ over 64 characters): what the assistant says. Left on provider Other."""
    setup = ".o_cats_mail_sync_setup"
    browser.click(
        f"{setup} .o_field_widget[name=provider] input[data-value=outlook]",
        f"{setup} .o_field_widget[name=provider_note]",
    )
    browser.shot(out / f"assistant-outlook-recruiter-{lang}.png")
    browser.click(
        f"{setup} .o_field_widget[name=provider] input[data-value=other]", "button[name=action_detect]"
    )
    browser.type(f"{setup} .o_field_widget[name=email] input", "a" * 65 + "@recruit.example.test")
    browser.click("button[name=action_detect]", ".o_error_dialog")
    browser.shot(out / f"assistant-address-refused-recruiter-{lang}.png")
    browser.evaluate(
        "document.querySelector('.o_error_dialog .btn-primary, .o_error_dialog .btn-close').click()"
    )
    browser.wait_gone(".o_error_dialog")
    # A Microsoft address under Other: Outlook.com at once, no password prompt.
    browser.type(f"{setup} .o_field_widget[name=email] input", "rita@hotmail.com")
    browser.wait(f"{setup} .o_field_widget[name=provider] input[data-value=outlook]:checked")
    browser.wait(f"{setup} .o_field_widget[name=provider_note]")
    browser.shot(out / f"assistant-other-hotmail-recruiter-{lang}.png")
    browser.type(f"{setup} .o_field_widget[name=email] input", RITA)
    browser.click(
        f"{setup} .o_field_widget[name=provider] input[data-value=other]", "button[name=action_detect]"
    )


def recruiter_second_look(browser, base, out, lang):
    """Sync now and Configure again on the active mailbox, a connection test that fails; then the
    profile again."""
    setup = ".o_cats_mail_sync_setup"
    # Sync now: its notification (the others closed first), the profile still open.
    browser.evaluate("document.querySelectorAll('.o_notification_close').forEach((button) => button.click())")
    browser.wait_gone(".o_notification")
    browser.click("button[name=action_mailbox_sync]", ".o_notification")
    browser.wait(".o_notebook a.nav-link.active[name=cats_mail_sync]")
    browser.shot(out / f"profile-synced-recruiter-{lang}.png")
    # Configure again: the saved settings; a wrong password fails the test, Save becomes "anyway".
    browser.click(
        "button[name=action_mailbox_configure].btn-secondary",
        f"{setup} .o_field_widget[name=imap_host] input",
    )
    browser.shot(out / f"assistant-reopened-recruiter-{lang}.png")
    browser.type(f"{setup} .o_field_widget[name=password] input", "not-her-password")
    browser.click("button[name=action_test]", f"{setup} .alert-warning")
    browser.shot(out / f"assistant-failed-test-recruiter-{lang}.png")
    browser.evaluate("document.querySelector('.modal .btn-close')?.click()")  # left without saving
    browser.wait_gone(setup)
    profile(browser, base)


def recruiter_signing_in(browser, base, out, lang):
    """Configure on a mailbox that signs in with Microsoft: its saved settings, no password; then a
    run of hers (its problem, its history, a mail skipped), in her language."""
    profile(browser, base)
    setup = ".o_cats_mail_sync_setup"
    browser.click(
        "button[name=action_mailbox_configure].btn-secondary",
        f"{setup} div[name=keeps_sign_in]",
    )
    browser.shot(out / f"assistant-reopened-sign-in-recruiter-{lang}.png")
    browser.evaluate("document.querySelector('.modal .btn-close')?.click()")
    browser.wait_gone(setup)
    # A run recorded in English, read in her language.
    profile(browser, base)
    browser.click("button[name=action_mailbox_runs]", ".o_list_view .o_data_row")
    browser.click(".o_list_view .o_data_row td.o_data_cell", ".o_form_view .o_field_widget[name=error_shown]")
    browser.shot(out / f"sync-log-run-recruiter-{lang}.png")


def recruiter_deactivates(browser, base, out, lang):
    """Deactivate asks first, then says what it did, the profile still open."""
    profile(browser, base)
    browser.evaluate("document.querySelectorAll('.o_notification_close').forEach((button) => button.click())")
    # The confirmation is a dialog over the Preferences dialog: the second overlay.
    confirm = ".o-overlay-item ~ .o-overlay-item .modal-footer .btn-primary"
    browser.click("button[name=action_mailbox_deactivate]", confirm)
    browser.shot(out / f"profile-deactivate-recruiter-{lang}.png")
    browser.click(confirm, ".o_notification")
    browser.wait(".o_field_widget[name=mailbox_state]")
    browser.shot(out / f"profile-deactivated-recruiter-{lang}.png")


def reset_rita(registry):
    """Rita's mailbox back to not configured, for the next language's pass."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        rita = env["res.users"].search([("login", "=", "rita")])
        rita.action_mailbox_deactivate()
        rita.write({"mailbox_email": False, "mailbox_login": False, "mailbox_imap_host": False})
        env["cats_mail_sync.secret"]._put(rita, "cats_mailbox_password", False)
        rita._mailbox_settings_changed()


def addons_path():
    """Odoo's addons path, as its command line takes it (a list on Odoo 19, a string on 18)."""
    path = odoo.tools.config["addons_path"]
    return path if isinstance(path, str) else ",".join(path)


def wait_for_listener(registry, timeout=60):
    """Until the listener holds the active mailboxes (the profiles then say so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with registry.cursor() as cr:
            cr.execute("SELECT count(*) FROM cats_mail_sync_listening WHERE state = 'listening'")
            if cr.fetchone()[0]:
                return
        time.sleep(0.5)
    sys.exit(f"The listener did not listen within {timeout} s (see listener.log)")


def main(config, database, workdir, outdir):
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(workdir)
    demo_mailbox.main(config, database, workdir / "demo")  # also reads the configuration
    registry = odoo.modules.registry.Registry(database)
    rita_dovecot = Dovecot({RITA: RITA_PASSWORD}).start()
    server = listener = browser = None
    try:
        candidate_id = set_up(registry, workdir, rita_dovecot)
        port = free_port()
        with open(workdir / "odoo.log", "w") as log:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "odoo",
                    "-c",
                    config,
                    "-d",
                    database,
                    f"--http-port={port}",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=log,
                cwd=workdir,
            )
        # The listener, as an administrator runs it beside Odoo: the profiles say mail comes within seconds.
        with open(workdir / "listener.log", "w") as log:
            listener = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "odoo",
                    f"--addons-path={addons_path()}",
                    "cats_mail_sync_listen",
                    "-c",
                    config,
                    "-d",
                    database,
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=log,
                cwd=workdir,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/web/login", timeout=60)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        wait_for_listener(registry)
        browser = Browser(workdir)
        for lang in LANGUAGES:
            print(f"Screens in {lang}:")
            set_lang(registry, "admin", lang)
            set_lang(registry, "rita", lang)
            log_in(browser, base, "admin", "admin")
            admin_screens(browser, base, out, lang, candidate_id)
            log_in(browser, base, "rita", "rita")
            recruiter_screens(browser, base, out, lang, rita_dovecot, candidate_id)
            set_lang(registry, "olga", lang)
            log_in(browser, base, "olga", "olga")
            recruiter_signing_in(browser, base, out, lang)
            reset_rita(registry)
    finally:
        if browser:
            browser.close()
        for process in (server, listener):
            if process:
                process.terminate()
                process.wait(30)
        rita_dovecot.stop()
        conf = workdir / "demo" / "dovecot.conf.path"
        if conf.exists():
            subprocess.run(["dovecot", "-c", conf.read_text(), "stop"], check=False, capture_output=True)
    print(f"Screenshots in {out}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
