import { registry } from "@web/core/registry";

// A recruiter's mail with a candidate, logged on the candidate and on her application: the list
// tells the two rows apart (and says why there are two), grouping keeps them apart, removing one
// says what went and leaves no empty group, and a filter that leaves nothing says so.
registry.category("web_tour.tours").add("cats_mail_sync_logged_mail_feedback_tour", {
    url: "/odoo",
    steps: () => [
        { trigger: ".o_user_menu button", run: "click" },
        { trigger: "[data-menu=settings], [data-menu=preferences]", run: "click" },
        { trigger: ".o_notebook a.nav-link:contains(Email)", run: "click", timeout: 30000 },
        { trigger: "button[name=action_mailbox_logged]", run: "click" },
        { trigger: ".o_cats_mail_sync_rows:contains(One row per record a mail is logged on)" },
        // The candidate's own record: a Candidate on Odoo 18, a Talent (in a talent pool) on 19.
        { trigger: ".o_data_row:has(td[name=mailbox_record_type]:contains(/^(Candidate|Talent)$/)):has(td[name=mailbox_record]:contains(/^Carla Jansen$/))" },
        { trigger: ".o_data_row:has(td[name=mailbox_record_type]:contains(Application)):has(td[name=mailbox_record]:contains(Welder — Carla Jansen))" },
        // The sender as the other columns show addresses: no quotes.
        { trigger: ".o_data_row td[name=mailbox_sender]:contains(/^Carla Jansen <carla@example.com>$/)" },
        { trigger: ".o_searchview_dropdown_toggler", run: "click" },
        { trigger: ".o_group_by_menu .o_menu_item:contains(/^Record$/)", run: "click" },
        { trigger: ".o_group_header:contains(Welder — Carla Jansen)", run: "click" },
        { trigger: ".o_group_name:contains(/^\\s*Carla Jansen \\(1\\)/)" },
        {
            trigger: ".o_data_row:has(td[name=mailbox_record_type]:contains(Application)) button[name=action_mailbox_remove]",
            run: "click",
        },
        { trigger: ".modal-footer .btn-primary", run: "click" },
        {
            trigger: ".o_notification:contains(1 mail removed from Application: Welder — Carla Jansen)",
            timeout: 20000,
        },
        // The list is read again: the application's group is gone, not left at (0).
        { trigger: ".o_list_view:not(:has(.o_group_header:contains(Welder)))" },
        { trigger: ".o_group_name:contains(/^\\s*Carla Jansen \\(1\\)/)" },
        { trigger: ".o_searchview_dropdown_toggler", run: "click" },
        { trigger: ".o_filter_menu .o_menu_item:contains(Applications)", run: "click" },
        { trigger: ".o_view_nocontent:contains(No logged mail matches this search)" },
        { trigger: ".o_view_nocontent:not(:contains(after activation))" },
    ],
});
