import { session } from "@web/session";

// What differs between Odoo 18 and 19 in the tours (the addon's own differences: series/).
// A step whose action leaves the page says so on 19 (expectUnloadPage), a key 18 refuses.
export function leavingThePage(step) {
    return session.server_version_info[0] >= 19 ? { ...step, expectUnloadPage: true } : step;
}
