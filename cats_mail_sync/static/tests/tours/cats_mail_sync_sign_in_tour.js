import { registry } from "@web/core/registry";
import { leavingThePage } from "@cats_mail_sync/../tests/tours/cats_mail_sync_steps";

// A recruiter without admin rights connects a Microsoft 365 mailbox by signing in:
// Configure -> Microsoft 365 -> Sign in with Microsoft -> (the provider, which sends the
// browser back at once) -> the assistant again -> Test connection -> Save -> Activate.
registry.category("web_tour.tours").add("cats_mail_sync_sign_in_tour", {
    url: "/odoo",
    steps: () => [
        { trigger: ".o_user_menu button", run: "click" },
        { trigger: "[data-menu=settings], [data-menu=preferences]", run: "click" },
        { trigger: ".o_notebook a.nav-link:contains(Email)", run: "click", timeout: 30000 },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Not configured)" },
        { trigger: "button[name=action_mailbox_configure].btn-primary", run: "click" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=email] input:value(tess@recruit.example.test)" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=provider] label:contains(Microsoft 365)", run: "click" },
        leavingThePage({ trigger: ".modal-footer button[name=action_sign_in]:contains(Sign in with Microsoft)", run: "click" }),
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=detection_log]:contains(Signed in with Microsoft as tess@recruit.example.test)", timeout: 30000 },
        { trigger: "button[name=action_test]", run: "click" },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=test_result]:contains(IMAP: signed in)", timeout: 30000 },
        { trigger: ".o_cats_mail_sync_setup .o_field_widget[name=test_result]:contains(SMTP: signed in)" },
        { trigger: "button[name=action_save]", run: "click" },
        { trigger: ".modal .o_notebook a.nav-link:contains(Email)", run: "click", timeout: 30000 },
        { trigger: ".o_field_widget[name=mailbox_signed_in_as]:contains(Signed in with Microsoft as tess@recruit.example.test)", timeout: 30000 },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Not active)" },
        { trigger: "button[name=action_mailbox_activate]", run: "click" },
        { trigger: ".o_field_widget[name=mailbox_state]:contains(Active)", timeout: 30000 },
    ],
});
