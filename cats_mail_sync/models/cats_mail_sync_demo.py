from odoo import api, models

from .. import series


class CatsMailSyncDemo(models.AbstractModel):
    """The demo data made through the series (see series/): persons, and tom's rights. Loaded
    by demo/cats_mail_sync_demo.xml."""

    _name = "cats_mail_sync.demo"
    _description = "Mailbox demo data"

    @api.model
    def _load(self):
        ref = self.env.ref
        tom = ref("cats_mail_sync.demo_user_recruiter")
        tom.write(
            series.user_groups(ref("base.group_user") | ref("hr_recruitment.group_hr_recruitment_user"))
        )
        # Sofia applies as a welder; Ravi has no application yet.
        sofia = series.new_person(
            self.env,
            {"partner_name": "Sofia Jansen", "partner_id": ref("cats_mail_sync.demo_partner_sofia").id},
        )
        ravi = series.new_person(
            self.env, {"partner_name": "Ravi Patel", "partner_id": ref("cats_mail_sync.demo_partner_ravi").id}
        )
        application = series.new_application(sofia, {"job_id": ref("cats_mail_sync.demo_job_welder").id})
        records = {
            "demo_person_sofia": sofia,
            "demo_application_sofia_welder": application,
            "demo_person_ravi": ravi,
        }
        self.env["ir.model.data"]._update_xmlids(
            [
                {"xml_id": f"cats_mail_sync.{name}", "record": record, "noupdate": True}
                for name, record in records.items()
            ]
        )
