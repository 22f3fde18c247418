"""What differs between the Odoo series this addon runs on, in one place.

``odoo18.py`` and ``odoo19.py`` define the same names (NAMES), each as its series needs them;
this package hands out the running series' ones. Nothing else in the addon asks which Odoo it
runs on: a difference found elsewhere belongs here. A new series is a file of its own.
"""

from importlib import import_module

from odoo.release import version_info

NAMES = (
    "PERSON",
    "PERSON_TABLE",
    "RECORD_TYPES",
    "SERIES",
    "SHOWS_RECIPIENTS",
    "SMTP_CONNECT",
    "Transaction",
    "in_test_mode",
    "new_application",
    "new_person",
    "note_progress",
    "personal_server",
    "recipient_fields",
    "record_type",
    "records_of",
    "unique",
    "user_groups",
)

_running = import_module(f".odoo{min(version_info[0], 19)}", __name__)
globals().update({name: getattr(_running, name) for name in NAMES})
