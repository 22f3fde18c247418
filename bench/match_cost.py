"""Benchmark: what matching one batch of mail addresses costs, by the number of contacts.

``python3 bench/match_cost.py CONFIG DATABASE [COUNT ...]`` on a scratch database where cats_mail_sync
is installed: adds contacts in SQL (one in four with several addresses in its email field, as
"Desk <desk1@x>; jobs1@x"), up to each COUNT in turn (default 1,000, 100,000 and 1,000,000),
and a candidate for every tenth, times the logger's ``_match`` of a batch of 200 addresses (see
``batch``) and prints the milliseconds per batch.
Nothing is committed: the contacts are gone afterwards, and the tables vacuumed (see ``vacuum``).
"""

import random
import statistics
import sys
import time
from contextlib import closing

import psycopg2

import odoo
import odoo.api
import odoo.modules.registry
import odoo.sql_db
import odoo.tools

BATCH = 200
RUNS = 15
DOMAINS = 997


def add_contacts(env, start, stop, company):
    """Contacts ``start`` to ``stop`` (included): every fourth with two addresses, every tenth
    (from the fifth) the partner of a candidate (``series.PERSON``) of its own address."""
    from odoo.addons.cats_mail_sync import series  # found once Odoo is configured

    cr = env.cr
    # The person's other NOT NULL columns, with the values the ORM gives them by default.
    cr.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND is_nullable = 'NO' "
        "AND column_default IS NULL AND column_name <> 'id'",
        [series.PERSON_TABLE],
    )
    required = env[series.PERSON].default_get([row[0] for row in cr.fetchall()])
    cr.execute(
        """
        WITH partners AS (
            INSERT INTO res_partner (name, complete_name, ref, type, active, email, email_normalized,
                                     create_date, write_date)
            SELECT 'Bench ' || i, 'Bench ' || i, i, 'contact', true,
                   CASE WHEN i %% 4 = 0
                        THEN format('Desk <desk%%s@bench%%s.example.com>; Jobs%%s@bench%%s.example.com',
                                    i, i %% %(domains)s, i, i %% %(domains)s)
                        ELSE format('Contact%%s@bench%%s.example.com', i, i %% %(domains)s) END,
                   CASE WHEN i %% 4 = 0
                        THEN format('desk%%s@bench%%s.example.com', i, i %% %(domains)s)
                        ELSE format('contact%%s@bench%%s.example.com', i, i %% %(domains)s) END,
                   now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
              FROM generate_series(%(start)s, %(stop)s) AS i
            RETURNING id, ref::int AS i
        )
        INSERT INTO %(person)s (partner_name, email_from, email_normalized, partner_id, company_id,
                                active, create_date, write_date %(required)s)
        SELECT 'Candidate ' || i, format('cand%%s@bench%%s.example.com', i, i %% %(domains)s),
               format('cand%%s@bench%%s.example.com', i, i %% %(domains)s), id, %(company)s, true,
               now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' %(defaults)s
          FROM partners
         WHERE i %% 10 = 5
        """,
        {
            "start": start,
            "stop": stop,
            "domains": DOMAINS,
            "company": company,
            "person": psycopg2.extensions.AsIs(series.PERSON_TABLE),
            "required": psycopg2.extensions.AsIs("".join(f", {name}" for name in required)),
            "defaults": psycopg2.extensions.AsIs(
                "".join(f", {cr.mogrify('%s', [value]).decode()}" for value in required.values())
            ),
        },
    )
    cr.execute("ANALYZE res_partner")
    cr.execute(f"ANALYZE {series.PERSON_TABLE}")


def batch(count, rng):
    """200 addresses as a batch of mail holds them: 40 of single-address contacts, 40 of
    multi-address contacts (their second address), 20 of candidates, 100 unknown."""
    singles = [i for i in rng.sample(range(1, count + 1), BATCH) if i % 4][:40]
    multis = [4 * i for i in rng.sample(range(1, count // 4 + 1), 40)]
    candidates = [10 * i + 5 for i in rng.sample(range(count // 10), 20)]
    return (
        {f"contact{i}@bench{i % DOMAINS}.example.com" for i in singles}
        | {f"jobs{i}@bench{i % DOMAINS}.example.com" for i in multis}
        | {f"cand{i}@bench{i % DOMAINS}.example.com" for i in candidates}
        | {f"stranger{rng.randrange(10**9)}@elsewhere.example.net" for _ in range(BATCH // 2)}
    )


def measure(env, counts=(1_000, 100_000, 1_000_000)):
    """Milliseconds (median of 15 batches) that ``_match`` of a batch takes, by number of
    contacts added: ``{count: ms}``. Adds the contacts in ``env``'s transaction: roll it back,
    then vacuum the two tables (see ``vacuum``), or the next measurement reads their dead rows."""
    logger = env["cats_mail_sync.logger"]
    user = env.ref("base.user_admin")
    rng = random.Random(10)
    figures, added = {}, 0
    print(f"{'contacts':>10} {'ms per batch':>13} {'found':>6}", flush=True)
    for count in sorted(counts):
        add_contacts(env, added + 1, count, user.company_id.id)
        added = count
        timings = []
        for run in range(RUNS + 3):
            addresses = batch(count, rng)
            env.invalidate_all()
            started = time.perf_counter()
            found = logger._match(addresses, user)
            if run >= 3:  # the first ones warm the caches up
                timings.append((time.perf_counter() - started) * 1000)
        figures[count] = statistics.median(timings)
        print(f"{count:>10,} {figures[count]:>13.2f} {len(found):>6}", flush=True)
    return figures


def vacuum(database):
    """Clear the rows of rolled-back runs out of the tables measured, and rebuild their indexes:
    those of a run with a million contacts would otherwise stay that large (run on a scratch
    database: the tables are locked meanwhile)."""
    from odoo.addons.cats_mail_sync import series  # found once Odoo is configured

    _name, params = odoo.sql_db.connection_info_for(database)
    with closing(psycopg2.connect(**params)) as connection:
        connection.autocommit = True
        connection.cursor().execute(f"VACUUM FULL ANALYZE res_partner, {series.PERSON_TABLE}")


def main(config, database, *counts):
    odoo.tools.config.parse_config(["-c", config, "-d", database, "--log-level=warn"])
    registry = odoo.modules.registry.Registry(database)
    vacuum(database)
    try:
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            measure(env, *([tuple(int(count) for count in counts)] if counts else []))
            cr.rollback()
    finally:
        vacuum(database)


if __name__ == "__main__":
    main(*sys.argv[1:])
