from . import cats_mail_sync_setup
