from . import cats_mail_sync_rotate_key
from . import cats_mail_sync_listen
