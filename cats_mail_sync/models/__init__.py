from . import cats_mail_sync_folder
from . import cats_mail_sync_logger
from . import ir_mail_server
from . import mail_message
from . import mail_thread
from . import res_partner
from . import res_users
