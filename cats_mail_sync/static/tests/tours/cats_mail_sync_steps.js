import { session } from "@web/session";

// What differs between Odoo 18 and 19 in the tours (the addon's own differences: series/).
// A step whose action leaves the page says so on 19 (expectUnloadPage), a key 18 refuses.
export function leavingThePage(step) {
    return session.server_version_info[0] >= 19 ? { ...step, expectUnloadPage: true } : step;
}

// The chatter names whom a logged mail went to: the addon's line on 18; on 19 Odoo's own envelope,
// whose popover lists the To and Cc (the addon's line names a Bcc only).
export function recipientShown(address) {
    if (session.server_version_info[0] >= 19) {
        return [
            { trigger: ".o-mail-Message .o-mail-Message-notification", run: "click" },
            { trigger: `.o-mail-MessageNotificationPopover:contains(${address})` },
        ];
    }
    return [{ trigger: `.o-mail-Message .o-cats-mailbox-recipients:contains(To: ${address})` }];
}
