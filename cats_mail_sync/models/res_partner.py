from odoo import fields, models
from odoo.tools import SQL, email_normalize_all, sql

# The addresses of a contact's email field when it holds several, as the match has always
# read them (a comma or a semicolon: "a@x.com; Ann <b@y.com>"), NULL otherwise: single
# addresses are found through email_normalized's index. In lower case: the parts between
# separators that hold an "@", what follows an extra "@" (Odoo reads "a@b@c.com" as
# "b@c.com") and what Odoo's own address pattern finds (odoo.tools.mail.email_re, which it
# falls back on). That is every address Odoo's email_normalize_all finds in a list of
# addresses (names, quotes, angle brackets, comments, groups); the match's Python side
# keeps only those. Not found, as before: a non-ASCII local part written in capitals.
ADDRESSES_FUNCTION = "cats_mail_sync_email_addresses"
ADDRESSES_BODY = r"""
    SELECT CASE WHEN email ~ '[,;]' THEN ARRAY(
        SELECT address
          FROM regexp_split_to_table(lower(email), '[[:space:],;:<>()"]+') AS part,
               unnest(ARRAY[part, substring(part FROM '[^@]*@[^@]*$')]) AS address
         WHERE address LIKE '%_@_%'
         UNION
        SELECT found[1]
          FROM regexp_matches(lower(email), '([a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,63})', 'g') AS found
    ) END
"""
# What a call costs, in the planner's units (cpu_operator_cost each): tens of microseconds on a
# field with several addresses. At the default (100) the planner reads a table of a thousand
# contacts whole, calling the function on each, rather than use the index; much more and it
# expects the few contacts the index finds to cost enough for JIT compiling or parallel
# workers (milliseconds each). Not parallel safe, for the same reason.
ADDRESSES_COST = 1000
ADDRESSES_INDEX = "res_partner_cats_mail_sync_addresses_index"


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "cats_mail_sync.look_back.source"]
    _look_back_fields = ("email", "active")

    # Mail is matched on contacts' addresses every few minutes: index them.
    email_normalized = fields.Char(index="btree_not_null")

    def init(self):
        """Index every address of the email fields that hold several, through an immutable
        SQL function: PostgreSQL keeps the index in step with every write, ORM or not, and
        builds it in one pass over the table at install. Not partial: PostgreSQL keeps no
        statistics of a partial index, and without them it expects thousands of contacts
        per batch where there are a few."""
        super().init()
        cr = self.env.cr
        cr.execute(
            "SELECT prosrc, procost, proparallel FROM pg_proc WHERE proname = %s", [ADDRESSES_FUNCTION]
        )
        if cr.fetchone() != (ADDRESSES_BODY, ADDRESSES_COST, "u"):
            # A new definition: the index built with the old one must be built again.
            sql.drop_index(cr, ADDRESSES_INDEX, self._table)
            cr.execute(
                SQL(
                    "CREATE OR REPLACE FUNCTION %s(email text) RETURNS text[] "
                    "LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE COST %s AS %s",
                    SQL.identifier(ADDRESSES_FUNCTION),
                    ADDRESSES_COST,
                    ADDRESSES_BODY,
                )
            )
        # Without fastupdate: each search would also read the list of entries not yet
        # merged into the index, up to 4 MB until the next vacuum.
        cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS %s ON %s USING gin (%s(email)) WITH (fastupdate = off)",
                SQL.identifier(ADDRESSES_INDEX),
                SQL.identifier(self._table),
                SQL.identifier(ADDRESSES_FUNCTION),
            )
        )

    def _look_back_addresses(self):
        """The addresses through which these contacts' mail is matched (a field may hold several)."""
        return {
            address for partner in self if partner.active for address in email_normalize_all(partner.email)
        }
