import { markup } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { escape } from "@web/core/utils/strings";
import { ListController } from "@web/views/list/list_controller";
import { listView } from "@web/views/list/list_view";

// Odoo keeps a group emptied since the last load (by a drag and drop) at the next load, at (0):
// the group of a removed mail goes.
function forgetEmptiedGroups(config) {
    delete config.currentGroups;
    for (const group of Object.values(config.groups || {})) {
        forgetEmptiedGroups(group.list);
    }
}

// "Logged mail": a row per record a mail is on (the profile counts mails, so says the list), and,
// when a search or filter leaves nothing, an empty state that says so rather than how to start.
export class LoggedMailListController extends ListController {
    static template = "cats_mail_sync.LoggedMailListView";

    async beforeExecuteActionButton(clickParams) {
        if (clickParams.name === "action_mailbox_remove") {
            forgetEmptiedGroups(this.model.config);
        }
        return super.beforeExecuteActionButton(...arguments);
    }

    get noContentHelp() {
        const searching = this.env.searchModel.facets.some((facet) => facet.type !== "groupBy");
        if (!searching) {
            return this.props.info.noContentHelp;
        }
        return markup(
            `<p class="o_view_nocontent_empty_folder">${escape(_t("No logged mail matches this search"))}</p>` +
                `<p>${escape(_t("Remove a filter or change the search to see the other logged mail."))}</p>`
        );
    }
}

registry.category("views").add("cats_mail_sync_logged_mail_list", {
    ...listView,
    Controller: LoggedMailListController,
});
