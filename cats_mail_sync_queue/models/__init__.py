from . import cats_mail_sync_sync
