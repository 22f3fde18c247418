import { registry } from "@web/core/registry";
import { recipientShown } from "@cats_mail_sync/../tests/tours/cats_mail_sync_steps";

// A recruiter without admin rights connects their mailbox from My Profile:
// Configure -> Other -> detection -> settings -> Test connection -> Save -> Activate, each
// confirmed on screen.
// Steps that wait for the server (detection, connection test, save, activation) may take
// longer than the default 10 s on a busy 2-core machine.
registry.category("web_tour.tours").add("cats_mail_sync_setup_tour", {
    url: "/odoo",
    steps: () => [
        { trigger: ".o_user_menu button", run: "click" },
        { trigger: "[data-menu=settings], [data-menu=preferences]", run: "click" },
        { trigger: ".o_notebook a.nav-link:contains(Email)", run: "click", timeout: 30000 },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Not configured)" },
        { trigger: "button[name=action_mailbox_configure].btn-primary", run: "click" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=email] input", run: "edit tess@recruit.example.test" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=provider] label:contains(Other)", run: "click" },
        { trigger: ".modal-footer button[name=action_detect]", run: "click" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=detection_log]:contains(Mail servers your domain announces)", timeout: 30000 },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=imap_host]:contains(localhost)" },
        { trigger: ".modal-footer button[name=action_edit]", run: "click" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=imap_host] input:value(localhost)" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=password] input", run: "edit tess-Secret-44" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=confirmed] input", run: "click" },
        { trigger: ".modal-footer button[name=action_test]", run: "click" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=test_result]:contains(IMAP: signed in)", timeout: 30000 },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=test_result]:contains(SMTP: signed in)" },
        // Tested: Save leads now. Her email in Odoo changes only because she ticks it.
        { trigger: ".modal-footer button[name=action_save].btn-primary" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=set_user_email] input", run: "click" },
        { trigger: ".modal-footer button[name=action_save]", run: "click" },
        { trigger: ".o_notification:contains(Now click Activate)", timeout: 30000 },
        { trigger: "body:not(:has(.o_cats_mail_sync_setup))" },
        // Back on the profile's Email tab, without looking for it.
        { trigger: ".o_notebook a.nav-link.active:contains(Email)" },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Not active)" },
        { trigger: "button[name=action_mailbox_activate]", run: "click" },
        { trigger: ".o_notification:contains(Your mailbox is active)", timeout: 30000 },
        { trigger: ".o_notebook a.nav-link.active:contains(Email)" },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Active)" },
    ],
});

// The same recruiter, every day after: the mail her mailbox logged, from her profile; she removes
// one from the candidate it was logged on, and opens the candidate of the other.
registry.category("web_tour.tours").add("cats_mail_sync_logged_mail_tour", {
    url: "/odoo",
    steps: () => [
        { trigger: ".o_user_menu button", run: "click" },
        { trigger: "[data-menu=settings], [data-menu=preferences]", run: "click" },
        { trigger: ".o_notebook a.nav-link:contains(Email)", run: "click", timeout: 30000 },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Active)" },
        { trigger: "button[name=action_mailbox_logged]", run: "click" },
        { trigger: ".o_list_view .o_data_row:contains(Private matter)" },
        { trigger: ".o_list_view .o_data_row:contains(Interview on Tuesday)" },
        {
            trigger: ".o_list_view .o_data_row:contains(Private matter) button[name=action_mailbox_remove]",
            run: "click",
        },
        { trigger: ".modal-footer .btn-primary", run: "click" },
        { trigger: ".o_list_view:not(:has(.o_data_row:contains(Private matter)))", timeout: 20000 },
        {
            trigger: ".o_list_view .o_data_row:contains(Interview on Tuesday) button[name=action_mailbox_open_record]",
            run: "click",
        },
        // The candidate's chatter names whom the mail went to.
        ...recipientShown("tess@recruit.example.test"),
    ],
});
