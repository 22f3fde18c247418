{
    "name": "CATS Mail Sync",
    "summary": "Log each recruiter's Inbox and Sent mail with candidates and contacts (IMAP)",
    "version": "18.0.1.1.0",
    "category": "Human Resources/Recruitment",
    "license": "LGPL-3",
    "author": "cats_mail_sync",
    "website": "https://github.com/cats-mail-sync/cats_mail_sync",
    "depends": ["mail", "hr_recruitment"],
    "external_dependencies": {"python": ["imapclient", "dnspython"]},
    "data": [
        "security/ir.model.access.csv",
        "security/cats_mail_sync_security.xml",
        "data/cron.xml",
        "wizard/cats_mail_sync_setup_views.xml",
        "views/res_users_views.xml",
    ],
    "assets": {
        "web.assets_tests": ["cats_mail_sync/static/tests/tours/*.js"],
    },
    "demo": ["demo/cats_mail_sync_demo.xml"],
    "installable": True,
    "application": False,
}
