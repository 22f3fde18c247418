"""Every object the addon makes in the database beside the ORM, declared once.

The ORM makes and drops the tables, columns and constraints of the addon's fields. What it does
not know of is declared here: indexes on expressions, the SQL function they use, and columns kept
out of the ORM (encrypted secrets). Each model's ``init()`` makes the objects of its table
(:func:`make`); the uninstall hook drops them all (:func:`drop_all`). An object is made only
from this list, so none can be made without its removal; tests/test_uninstall (scripts/upgrade)
reads PostgreSQL's catalogue after an uninstall to hold that (scripts/upgrade_check.py).
"""

from dataclasses import dataclass

from odoo.tools import SQL, sql

from . import series


@dataclass(frozen=True)
class Index:
    """``CREATE [UNIQUE] INDEX name ON table [USING method] (expression) [WITH ...] [WHERE ...]``."""

    name: str
    table: str
    expression: str  # e.g. "lower(email_normalized)"
    method: str = "btree"
    unique: bool = False
    options: str = ""  # e.g. "fastupdate = off"
    where: str = ""

    def make(self, cr):
        cr.execute(
            SQL(
                "CREATE %s INDEX IF NOT EXISTS %s ON %s USING %s (%s) %s %s",
                SQL("UNIQUE" if self.unique else ""),
                SQL.identifier(self.name),
                SQL.identifier(self.table),
                SQL(self.method),
                SQL(self.expression),
                SQL(f"WITH ({self.options})" if self.options else ""),
                SQL(f"WHERE {self.where}" if self.where else ""),
            )
        )

    def drop(self, cr):
        sql.drop_index(cr, self.name, self.table)


@dataclass(frozen=True)
class Function:
    """``CREATE FUNCTION name(arguments) RETURNS returns LANGUAGE sql IMMUTABLE STRICT
    PARALLEL UNSAFE COST cost AS body``, made on the table whose indexes use it. Defined again
    (and those indexes built again) when its body or cost changed."""

    name: str
    table: str
    arguments: str  # e.g. "email text"
    returns: str
    body: str
    cost: int

    def make(self, cr):
        """Define the function; whether its definition changed (the indexes using it are stale)."""
        cr.execute("SELECT prosrc, procost, proparallel FROM pg_proc WHERE proname = %s", [self.name])
        if cr.fetchone() == (self.body, self.cost, "u"):
            return False
        cr.execute(
            SQL(
                "CREATE OR REPLACE FUNCTION %s(%s) RETURNS %s "
                "LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE COST %s AS %s",
                SQL.identifier(self.name),
                SQL(self.arguments),
                SQL(self.returns),
                self.cost,
                self.body,
            )
        )
        return True

    def drop(self, cr):
        cr.execute(SQL("DROP FUNCTION IF EXISTS %s(%s)", SQL.identifier(self.name), SQL(self.arguments)))


@dataclass(frozen=True)
class Column:
    """A column without ORM field: no read, export, search or group-by reaches it."""

    name: str
    table: str
    type: str

    def make(self, cr):
        cr.execute(
            SQL(
                "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s",
                SQL.identifier(self.table),
                SQL.identifier(self.name),
                SQL(self.type),
            )
        )

    def drop(self, cr):
        cr.execute(
            SQL(
                "ALTER TABLE IF EXISTS %s DROP COLUMN IF EXISTS %s",
                SQL.identifier(self.table),
                SQL.identifier(self.name),
            )
        )


# The addresses of a contact's email field when it holds several, as the match has always
# read them (a comma or a semicolon: "a@x.com; Ann <b@y.com>"), NULL otherwise: single
# addresses are found through email_normalized's index. In lower case: the parts between
# separators that hold an "@", what follows an extra "@" (Odoo reads "a@b@c.com" as
# "b@c.com") and what Odoo's own address pattern finds (odoo.tools.mail.email_re, which it
# falls back on). That is every address Odoo's email_normalize_all finds in a list of
# addresses (names, quotes, angle brackets, comments, groups); the match's Python side
# keeps only those. Not found, as before: a non-ASCII local part written in capitals.
# Its cost, in the planner's units (cpu_operator_cost each): tens of microseconds on a field
# with several addresses. At the default (100) the planner reads a table of a thousand contacts
# whole, calling the function on each, rather than use the index; much more and it expects the
# few contacts the index finds to cost enough for JIT compiling or parallel workers
# (milliseconds each). Not parallel safe, for the same reason.
ADDRESSES = Function(
    name="cats_mail_sync_email_addresses",
    table="res_partner",
    arguments="email text",
    returns="text[]",
    body=r"""
    SELECT CASE WHEN email ~ '[,;]' THEN ARRAY(
        SELECT address
          FROM regexp_split_to_table(lower(email), '[[:space:],;:<>()"]+') AS part,
               unnest(ARRAY[part, substring(part FROM '[^@]*@[^@]*$')]) AS address
         WHERE address LIKE '%_@_%'
         UNION
        SELECT found[1]
          FROM regexp_matches(lower(email), '([a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,63})', 'g') AS found
    ) END
""",
    cost=1000,
)

OBJECTS = (
    # Every address of the contacts' email fields that hold several, through ADDRESSES: PostgreSQL
    # keeps the index in step with every write, ORM or not. Not partial: PostgreSQL keeps no
    # statistics of a partial index, and without them expects thousands of contacts per batch
    # where there are a few. Without fastupdate: each search would also read the list of entries
    # not yet merged into the index, up to 4 MB until the next vacuum.
    ADDRESSES,
    Index(
        "res_partner_cats_mail_sync_addresses_index",
        "res_partner",
        f"{ADDRESSES.name}(email)",
        method="gin",
        options="fastupdate = off",
    ),
    # Contacts' (single) addresses, matched every few minutes.
    Index(
        "res_partner_cats_mail_sync_email_index",
        "res_partner",
        "email_normalized",
        where="email_normalized IS NOT NULL",
    ),
    # Persons' addresses (candidates on 18, applicants on 19), for the exact lookups of matching
    # (see the logger's ``_match``). hr_recruitment indexes them by trigrams, for searches by part
    # of an address: PostgreSQL takes that index for exact addresses too, and a batch of two
    # hundred then costs seconds once there are a few thousand candidates. Not partial, for the
    # statistics.
    Index(
        f"{series.PERSON_TABLE}_cats_mail_sync_email_index",
        series.PERSON_TABLE,
        "lower(email_normalized)",
    ),
    # Mail is told internal by colleagues' work addresses and contacts and users' logins (see the
    # logger's ``_privacy``) at every batch.
    Index("hr_employee_cats_mail_sync_work_email_index", "hr_employee", "lower(work_email)"),
    Index(
        "hr_employee_cats_mail_sync_work_contact_index",
        "hr_employee",
        "work_contact_id",
        where="work_contact_id IS NOT NULL",
    ),
    Index("res_users_cats_mail_sync_login_index", "res_users", "lower(login)"),
    # A mail is logged at most once on a record, even when two mailboxes log it at the same
    # moment: the second transaction fails and retries.
    Index(
        "mail_message_cats_mail_sync_once",
        "mail_message",
        "res_id, model, message_id",
        unique=True,
        where="mailbox_user_id IS NOT NULL",
    ),
    # Secrets, encrypted (see cats_mail_sync.secret): the recruiters' mailbox passwords, and the
    # tokens of their sign-ins.
    Column("cats_mailbox_password", "res_users", "varchar"),
    Column("cats_refresh_token", "cats_mail_sync_token", "varchar"),
    Column("cats_access_token", "cats_mail_sync_token", "varchar"),
)


def make(cr, table):
    """Make the objects of ``table`` (what its model's ``init()`` calls), in the order declared; an
    index on a function defined anew is built anew."""
    redefined = set()
    for thing in OBJECTS:
        if thing.table != table:
            continue
        if isinstance(thing, Function):
            if thing.make(cr):
                redefined.add(thing.name)
        elif isinstance(thing, Index) and any(f"{name}(" in thing.expression for name in redefined):
            thing.drop(cr)
            thing.make(cr)
        else:
            thing.make(cr)


def drop_all(cr):
    """Drop every object of OBJECTS, in the reverse order (an index before its function)."""
    for thing in reversed(OBJECTS):
        thing.drop(cr)
