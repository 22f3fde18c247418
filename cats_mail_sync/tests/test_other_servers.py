"""The sync's end-to-end tests (activation, scan, look-back, history, removal, hostile mail)
against Courier-IMAP and Cyrus IMAP too, as real servers: each answers in its own way what
RFC 3501 allows (Courier quotes the header's field names and names its Sent folder
"INBOX.Sent"; Cyrus lists the \\Sent flag in lower case). The same tests as for Dovecot, run
again on each: the classes below only change the server (see harness/courier.py, cyrus.py), and
let Odoo's test loader run the methods they inherit (it runs a class's own methods only)."""

from odoo.tests import tagged

from . import test_activation, test_logging, test_look_back, test_reliability, test_removal
from .harness.courier import Courier
from .harness.cyrus import Cyrus


@tagged("post_install", "-at_install")
class TestActivationOnCourier(test_activation.TestActivation):
    imap_server = Courier
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestLoggingOnCourier(test_logging.TestLogging):
    imap_server = Courier
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestLookBackOnCourier(test_look_back.TestLookBack):
    imap_server = Courier
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestHistoryOnCourier(test_look_back.TestHistory):
    imap_server = Courier
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestRemovalOnCourier(test_removal.TestRemoval):
    imap_server = Courier
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestOneBadMailNeverBlocksOnCourier(test_reliability.TestOneBadMailNeverBlocks):
    imap_server = Courier
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestActivationOnCyrus(test_activation.TestActivation):
    imap_server = Cyrus
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestLoggingOnCyrus(test_logging.TestLogging):
    imap_server = Cyrus
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestLookBackOnCyrus(test_look_back.TestLookBack):
    imap_server = Cyrus
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestHistoryOnCyrus(test_look_back.TestHistory):
    imap_server = Cyrus
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestRemovalOnCyrus(test_removal.TestRemoval):
    imap_server = Cyrus
    allow_inherited_tests_method = True


@tagged("post_install", "-at_install")
class TestOneBadMailNeverBlocksOnCyrus(test_reliability.TestOneBadMailNeverBlocks):
    imap_server = Cyrus
    allow_inherited_tests_method = True
