import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# mailbox_client and the test servers (harness), imported without Odoo.
sys.path.insert(0, str(REPO / "cats_mail_sync"))
sys.path.insert(0, str(REPO / "cats_mail_sync" / "tests"))


@pytest.fixture(scope="session", autouse=True)
def load_registry():
    """These tests need no Odoo: replace pytest-odoo's fixture that loads a database."""
    yield
