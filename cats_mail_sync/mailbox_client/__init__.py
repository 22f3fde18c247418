"""Mail server access for cats_mail_sync, free of Odoo: connections, folders, addresses, discovery."""
