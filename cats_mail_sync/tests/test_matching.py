"""Mail is matched to contacts and candidates through indexes only: the queries of a batch,
and their plans, do not depend on how many contacts, candidates or addresses there are."""

from unittest.mock import patch

from odoo import fields
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import SQL, email_normalize_all

from .. import series
from ..mailbox_client.reader import Headers
from ..models.cats_mail_sync_sync import Tally

RECRUITER = "rita@recruit.example.test"


@tagged("post_install", "-at_install")
class TestMatching(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.recruiter = new_test_user(
            cls.env,
            login="rita",
            email=RECRUITER,
            groups="base.group_user,hr_recruitment.group_hr_recruitment_user",
        )
        cls.inbox = cls.env["cats_mail_sync.folder"].create(
            {
                "user_id": cls.recruiter.id,
                "role": "inbox",
                "name": "INBOX",
                "uidvalidity": 1,
                "last_uid": 0,
                "synced_at": fields.Datetime.now(),
            }
        )
        cls.logger = cls.env["cats_mail_sync.logger"]

    def match(self, *addresses):
        """``{address: records}`` as a synchronization (its own transaction) would find them."""
        self.env.flush_all()
        self.env.invalidate_all()
        return self.logger._match(set(addresses), self.recruiter)

    def add_contacts(self, count, domain):
        """``count`` contacts in SQL, as an import would: every fourth with two addresses
        ("Desk <desk4@domain>; Jobs4@domain"), every tenth (from the fifth) the partner of a
        candidate of its own address (cand5@domain)."""
        self.env.cr.execute(
            f"""
            WITH partners AS (
                INSERT INTO res_partner (name, complete_name, ref, type, active, email, email_normalized)
                SELECT 'Bulk ' || i, 'Bulk ' || i, i, 'contact', true,
                       CASE WHEN i %% 4 = 0
                            THEN format('Desk <desk%%s@%%s>; Jobs%%s@%%s', i, %(domain)s, i, %(domain)s)
                            ELSE format('Contact%%s@%%s', i, %(domain)s) END,
                       CASE WHEN i %% 4 = 0 THEN format('desk%%s@%%s', i, %(domain)s)
                            ELSE format('contact%%s@%%s', i, %(domain)s) END
                  FROM generate_series(1, %(count)s) AS i
                RETURNING id, ref::int AS i
            )
            INSERT INTO {self.person_table()} (partner_name, email_from, email_normalized, partner_id,
                                               company_id, active)
            SELECT 'Candidate ' || i, format('cand%%s@%%s', i, %(domain)s),
                   format('cand%%s@%%s', i, %(domain)s), id, %(company)s, true
              FROM partners
             WHERE i %% 10 = 5
            """,
            {"count": count, "domain": domain, "company": self.env.company.id},
        )
        self.env.cr.execute("ANALYZE res_partner")
        self.env.cr.execute(f"ANALYZE {series.PERSON_TABLE}")

    def pool(self, count, domain):
        """Addresses of the contacts of :meth:`add_contacts`: single, second of two, candidates'."""
        return (
            [f"contact{i}@{domain}" for i in range(1, count + 1) if i % 4 and i % 10 != 5],
            [f"jobs{i}@{domain}" for i in range(4, count + 1, 4)],
            [f"cand{i}@{domain}" for i in range(5, count + 1, 10)],
        )

    def queries(self, function, *args):
        """The number of SQL queries ``function(*args)`` runs, and what it returns."""
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.env.cr.sql_log_count
        result = function(*args)
        return self.env.cr.sql_log_count - before, result

    def test_every_address_of_a_contact_is_found_as_odoo_reads_it(self):
        emails = [
            '"Smith, Ann" <Ann.Smith@Agency.example.com>, bob@agency.example.com',
            "Desk <desk@agency.example.com>; JOBS@agency.example.com",
            "team: one@team.example.com, two@team.example.com;",
            "first@lines.example.com,\nsecond@lines.example.com",
            "noted@comment.example.com (Noted), other@comment.example.com",
            "o'brien@quote.example.com, <angle@quote.example.com>",
        ]
        contacts = self.env["res.partner"].create(
            [{"name": f"Several {number}", "email": email} for number, email in enumerate(emails)]
        )
        for contact in contacts:
            addresses = email_normalize_all(contact.email)
            self.assertGreaterEqual(len(addresses), 2)
            found = self.match(*addresses)
            for address in addresses:
                self.assertEqual(found[address], [contact], address)
        # A part of an address is no address of the contact.
        self.assertFalse(
            self.match("smith@agency.example.com", "ob@agency.example.com", "agency.example.com")
        )

    def test_contact_with_several_addresses_is_found_after_each_change(self):
        agency = self.env["res.partner"].create(
            {"name": "Agency", "email": "Desk <desk@agency.example.com>; Jobs@Agency.example.com"}
        )
        self.assertEqual(self.match("jobs@agency.example.com")["jobs@agency.example.com"], [agency])
        self.assertEqual(self.match("desk@agency.example.com")["desk@agency.example.com"], [agency])

        agency.email = "hr@agency.example.com, jobs@agency.example.com"
        self.assertFalse(self.match("desk@agency.example.com"))
        self.assertEqual(self.match("hr@agency.example.com")["hr@agency.example.com"], [agency])

        agency.email = "hr@agency.example.com"
        self.assertFalse(self.match("jobs@agency.example.com"))
        self.assertEqual(self.match("hr@agency.example.com")["hr@agency.example.com"], [agency])

        agency.email = "hr@agency.example.com; jobs@agency.example.com"
        agency.action_archive()
        self.assertFalse(self.match("jobs@agency.example.com", "hr@agency.example.com"))
        agency.action_unarchive()
        self.assertEqual(self.match("jobs@agency.example.com")["jobs@agency.example.com"], [agency])

        agency.unlink()
        self.assertFalse(self.match("jobs@agency.example.com", "hr@agency.example.com"))

    def test_queries_do_not_grow_with_contacts_or_addresses(self):
        self.add_contacts(20, "few.example.com")
        singles, seconds, candidates = self.pool(20, "few.example.com")
        few = [singles[0], seconds[0], candidates[0]]
        self.queries(self.logger._match, set(few), self.recruiter)  # caches of settings filled

        few_queries, found = self.queries(self.logger._match, set(few), self.recruiter)
        self.assertEqual(set(found), set(few))

        self.add_contacts(3000, "many.example.com")
        singles, seconds, candidates = self.pool(3000, "many.example.com")
        many = singles[:60] + seconds[:60] + candidates[:30] + [f"nobody{i}@x.example.com" for i in range(50)]
        many_queries, found = self.queries(self.logger._match, set(many), self.recruiter)
        self.assertEqual(set(found), set(many[:150]))
        self.assertEqual(many_queries, few_queries)

        def headers(addresses):
            return [
                Headers(uid=uid, message_id=f"<{uid}@x>", senders={address}, recipients={RECRUITER})
                for uid, address in enumerate(addresses, 1)
            ]

        sync = self.env["cats_mail_sync.sync"]
        self.queries(sync._match_batch, self.recruiter, self.inbox, headers(few), Tally())  # caches filled
        few_queries, found = self.queries(
            sync._match_batch, self.recruiter, self.inbox, headers(few), Tally()
        )
        self.assertEqual(len(found), 3)
        many_queries, found = self.queries(
            sync._match_batch, self.recruiter, self.inbox, headers(many), Tally()
        )
        self.assertEqual(len(found), 150)
        self.assertEqual(many_queries, few_queries)

    def match_recorded(self, addresses):
        """``_match`` of ``addresses`` from a cold cache, and the ``(query, params)`` it executed."""
        executed = []
        execute = self.env.cr.execute

        def recording(query, params=None, log_exceptions=True):
            executed.append((query, params))
            return execute(query, params, log_exceptions)

        self.env.invalidate_all()
        with patch.object(self.env.cr, "execute", recording):
            return self.logger._match(addresses, self.recruiter), executed

    def person_table(self):
        """The persons' table (``series.PERSON_TABLE``), ready for rows inserted by SQL: the
        columns PostgreSQL requires get the ORM's defaults, in this test's transaction only."""
        table = series.PERSON_TABLE
        self.env.cr.execute(
            """
            SELECT column_name FROM information_schema.columns
             WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL AND column_name != 'id'
            """,
            [table],
        )
        required = [row[0] for row in self.env.cr.fetchall()]
        for column, value in self.env[series.PERSON].default_get(required).items():
            self.env.cr.execute(
                SQL(
                    "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s",
                    SQL.identifier(table),
                    SQL.identifier(column),
                    value,
                )
            )
        return table

    def explain(self, query, params):
        """PostgreSQL's plan of ``query`` (a string with ``params``, or an ``SQL``)."""
        self.env.cr.execute(
            SQL("EXPLAIN %s", query) if isinstance(query, SQL) else f"EXPLAIN {query}", params
        )
        return "\n".join(row[0] for row in self.env.cr.fetchall())

    def test_contacts_are_found_through_indexes(self):
        self.add_contacts(20_000, "bulk.example.com")
        singles, seconds, candidates = self.pool(20_000, "bulk.example.com")
        addresses = set(singles[:50] + seconds[:50] + candidates[:50])
        found, executed = self.match_recorded(addresses)
        self.assertEqual(set(found), addresses)

        partner_queries = 0
        for query, params in executed:
            text = query.code if hasattr(query, "code") else query
            if "FROM res_partner p" not in text:
                continue
            partner_queries += 1
            plan = self.explain(query, params)
            self.assertIn("res_partner_cats_mail_sync_addresses_index", plan)
            self.assertIn("res_partner_cats_mail_sync_email_index", plan)
            self.assertNotIn("Seq Scan on res_partner", plan)
            self.assertNotIn(f"Seq Scan on {series.PERSON_TABLE}", plan)
            self.assertNotIn("Gather", plan)  # no parallel workers started for a few contacts
        self.assertEqual(partner_queries, 1)

    def test_candidates_are_found_through_an_index_of_exact_addresses(self):
        """Not through hr_recruitment's trigram index: with a few thousand candidates, PostgreSQL
        took it for a batch of exact addresses, and spent seconds on it. Nor by reading every
        candidate, which it preferred to the index, as one condition, up to some 40,000."""
        self.env.cr.execute(
            f"""
            INSERT INTO {self.person_table()} (partner_name, email_from, email_normalized, company_id, active)
            SELECT 'Bulk ' || i, format('Cand%%s@bulk.example.com', i), format('cand%%s@bulk.example.com', i),
                   %s, true
              FROM generate_series(1, 10000) AS i
            """,
            [self.env.company.id],
        )
        self.env.cr.execute(f"ANALYZE {series.PERSON_TABLE}")
        wanted = {f"cand{i}@bulk.example.com" for i in range(1, 10000, 100)}
        addresses = wanted | {f"nobody{i}@bulk.example.com" for i in range(100)}
        found, executed = self.match_recorded(addresses)
        self.assertEqual(set(found), wanted)
        [(query, params)] = [(q, p) for q, p in executed if "FROM unnest" in str(q)]
        plan = self.explain(query, params)
        self.assertIn(f"{series.PERSON_TABLE}_cats_mail_sync_email_index", plan)
        self.assertNotIn(f"{series.PERSON_TABLE}__email_normalized_index", plan)
        self.assertNotIn(f"Seq Scan on {series.PERSON_TABLE}", plan)
