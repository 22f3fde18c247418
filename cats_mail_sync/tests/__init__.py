from . import test_activation
from . import test_failures
from . import test_logging
from . import test_security
from . import test_setup
from . import test_translation
from . import test_privacy
from . import test_secrets
