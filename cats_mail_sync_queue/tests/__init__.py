from . import test_queue
from . import test_job_runner
