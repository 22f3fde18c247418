import { registry } from "@web/core/registry";

// A second look at the assistant, as a recruiter without admin rights. Steps that wait for the
// server (detection, connection test, save) may take longer than the default 10 s on a busy
// 2-core machine.
const setup = ".o_cats_mail_sync_setup";

function configure(state) {
    return [
        { trigger: ".o_user_menu button", run: "click" },
        { trigger: "[data-menu=settings], [data-menu=preferences]", run: "click" },
        { trigger: ".o_notebook a.nav-link:contains(Email)", run: "click", timeout: 30000 },
        { trigger: `.o_field_widget[name=mailbox_state]:contains(${state})` },
        { trigger: "button[name=action_mailbox_configure]", run: "click" },
    ];
}

// Her mail server's password changed: Configure shows what she saved, she types the new password
// only, and her mailbox goes on logging.
registry.category("web_tour.tours").add("cats_mail_sync_change_password_tour", {
    url: "/odoo",
    steps: () => [
        ...configure("Active"),
        { trigger: `${setup} .o_field_widget[name=email]:contains(tess@recruit.example.test)` },
        { trigger: `${setup} .o_field_widget[name=login] input:value(tess@recruit.example.test)` },
        { trigger: `${setup} .o_field_widget[name=imap_host] input:value(localhost)` },
        { trigger: `${setup} .o_field_widget[name=smtp_host] input:value(localhost)` },
        { trigger: `${setup}:contains(Your saved password is kept)` },
        { trigger: `${setup}:not(:contains(These settings point to another mailbox))` },
        { trigger: `${setup} .o_field_widget[name=password] input`, run: "edit tess-Secret-44" },
        { trigger: ".modal-footer button[name=action_test].btn-primary", run: "click" },
        { trigger: `${setup} .o_field_widget[name=test_result]:contains(IMAP: signed in)`, timeout: 30000 },
        { trigger: `${setup} .o_field_widget[name=test_result]:contains(SMTP: signed in)` },
        { trigger: ".modal-footer button[name=action_save].btn-primary", run: "click" },
        { trigger: ".o_notification:contains(Your mailbox goes on logging mail)", timeout: 30000 },
        { trigger: `body:not(:has(${setup}))` },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Active)" },
        // Sync now, from the profile dialog: it says what it did, and the profile stays open.
        { trigger: "body:not(:has(.o_notification))", timeout: 30000 },
        { trigger: ".modal button[name=action_mailbox_sync]", run: "click" },
        { trigger: ".o_notification:contains(New mails logged)", timeout: 30000 },
        { trigger: ".modal .o_notebook a.nav-link.active:contains(Email)" },
    ],
});

// She types a wrong password: the test says so, Save is no longer the way on, and saving anyway
// does not pretend her mailbox goes on logging.
registry.category("web_tour.tours").add("cats_mail_sync_failed_test_tour", {
    url: "/odoo",
    steps: () => [
        ...configure("Active"),
        { trigger: `${setup} .o_field_widget[name=imap_host] input:value(localhost)` },
        { trigger: `${setup} .o_field_widget[name=password] input`, run: "edit not-her-password" },
        { trigger: ".modal-footer button[name=action_test]", run: "click" },
        {
            trigger: `${setup} .o_field_widget[name=test_result]:contains(refused the login name or password)`,
            timeout: 30000,
        },
        { trigger: `${setup} .alert-warning:contains(These settings did not work in the connection test)` },
        { trigger: ".modal-footer button[name=action_test].btn-primary" },
        { trigger: ".modal-footer:not(:has(button[name=action_save].btn-primary))" },
        { trigger: ".modal-footer button[name=action_save].btn-secondary:contains(Save anyway)", run: "click" },
        { trigger: ".o_notification:contains(will report the problem at its next run)", timeout: 30000 },
        { trigger: ".o_notification:not(:contains(goes on logging))" },
        { trigger: `body:not(:has(${setup}))` },
    ],
});

// She mistypes her address, nothing is found there: Back takes her to the address to correct it.
registry.category("web_tour.tours").add("cats_mail_sync_back_after_nothing_found_tour", {
    url: "/odoo",
    steps: () => [
        ...configure("Not configured"),
        { trigger: `${setup} .o_field_widget[name=email] input`, run: "edit tess@recruit.exmaple.test" },
        { trigger: `${setup} .o_field_widget[name=provider] label:contains(Other)`, run: "click" },
        { trigger: ".modal-footer button[name=action_detect]", run: "click" },
        {
            trigger: `${setup} .o_field_widget[name=detection_log]:contains(No settings were found for this address)`,
            timeout: 30000,
        },
        { trigger: ".modal-footer button[name=action_back]", run: "click" },
        { trigger: `${setup} .o_field_widget[name=email] input`, run: "edit tess@recruit.example.test" },
        { trigger: ".modal-footer button[name=action_detect]", run: "click" },
        {
            trigger: `${setup} .o_field_widget[name=detection_log]:contains(Mail servers your domain announces)`,
            timeout: 30000,
        },
        { trigger: `${setup} .o_field_widget[name=imap_host]:contains(localhost)` },
    ],
});
