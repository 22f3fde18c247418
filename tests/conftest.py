import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "cats_mail_sync"))


@pytest.fixture(scope="session", autouse=True)
def load_registry():
    """These tests need no Odoo: replace pytest-odoo's fixture that loads a database."""
    yield
