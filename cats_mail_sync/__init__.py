from . import controllers
from . import models
from . import wizard
from . import cli
from .hooks import uninstall_hook
