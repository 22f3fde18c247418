"""What differs between the Odoo series this addon runs on, in one place.

``odoo18.py`` and ``odoo19.py`` define the same names, each as its series needs them; this
package hands out the running series' ones. Nothing else in the addon asks which Odoo it runs
on: a difference found elsewhere belongs here. A new series is a file of its own.
"""

from odoo.release import version_info

if version_info[0] >= 19:
    from .odoo19 import *  # noqa: F403
else:
    from .odoo18 import *  # noqa: F403
