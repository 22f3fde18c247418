{
    "name": "CATS Mail Sync: queue jobs",
    "summary": "Each mailbox's sync as a queue job, so that several Odoo servers share the work",
    "version": "1.1.0",
    "category": "Human Resources/Recruitment",
    "license": "LGPL-3",
    "author": "cats_mail_sync",
    "website": "https://github.com/cats-mail-sync/cats_mail_sync",
    "depends": ["cats_mail_sync", "queue_job"],
    "data": ["data/queue_job_data.xml"],
    "installable": True,
    "auto_install": True,
    "application": False,
}
