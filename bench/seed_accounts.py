#!/usr/bin/python3
"""Seeds N existing customers into a migrated usher SQLite database, as the
worker leaves them: for each, an account, its profile, its activation token,
its succeeded job and that job's attempt, so that every table and index the
drain touches holds N rows of realistic shape. Emails have the shape of
bench/wrk/post_users.lua's ('b<random hex>-<n>@bench.example.com'), so new
customers land between the existing ones in every email index, not after
them; token digests are random, as those of tokens issued before their
issue time was part of them (78641e8): the database of a customer base that
upgraded, new tokens' digests sorting together at one place among them.

One transaction, rollback journal and no fsync while seeding (the database
is a benchmark's scratch copy), then back to WAL. 1 million customers take
about 20 s on the 2-core benchmark machine.

Usage: bench/seed_accounts.py DATABASE N   (run before `usher serve` starts)
"""
import sqlite3
import sys
import time

# One INSERT … SELECT per table over a recursive counter. Each table is
# filled in the order of its unique index (accounts by email, tokens by
# hash), so that its rows and that index both grow at their end; the jobs'
# indexes are dropped while their rows go in and built again after (a sort
# each): random inserts into four indexes of a million entries took most of
# a minute. CROSS JOIN keeps the accounts outside (in id order, no sort).
SEED = [
    """INSERT INTO accounts (email, email_normalized, created_at)
       SELECT e, e, '2026-01-01T00:00:00.000Z' FROM (
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n)
         SELECT 'b' || lower(hex(randomblob(8))) || '-' || i || '@bench.example.com' AS e FROM n)
       ORDER BY e""",
    """INSERT INTO tripwire_users (user_id, full_name, created_by, created_by_token_id, created_at)
       SELECT id, 'Seeded Buyer', 'bench', 1, created_at FROM accounts ORDER BY id""",
    """INSERT INTO activation_tokens (account_id, token_hash, expires_at, created_at)
       SELECT id, h, '2026-01-08T00:00:00.000Z', created_at FROM (
         SELECT id, lower(hex(randomblob(32))) AS h, created_at FROM accounts)
       ORDER BY h""",
    """INSERT INTO jobs (id, email, email_normalized, active_email, payload, status, attempts,
         user_id, created_by_token_id, run_after, created_at, updated_at, activation_token_hash,
         activation_expires_at)
       SELECT a.id, a.email, a.email_normalized, a.email_normalized,
         '{"email":"' || a.email || '","full_name":"Seeded Buyer","created_by":"bench"}',
         'succeeded', 1, a.id, 1, a.created_at, a.created_at, '2026-01-01T00:00:01.000Z',
         t.token_hash, t.expires_at
       FROM accounts a CROSS JOIN activation_tokens t ON t.account_id = a.id ORDER BY a.id""",
    """INSERT INTO job_attempts (job_id, attempt, worker, outcome, started_at, finished_at,
         duration_ms)
       SELECT id, 1, 'seed', 'succeeded', created_at, updated_at, 1 FROM jobs ORDER BY id""",
]

# The jobs' own indexes (not the constraints'), dropped while seeding.
JOB_INDEXES = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL"


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, n = sys.argv[1], int(sys.argv[2])
    if n <= 0:
        return
    start = time.monotonic()
    db = sqlite3.connect(path, isolation_level=None)
    existing = db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0]
    if existing:
        sys.exit(f"{path} already has {existing} accounts: seed a fresh database")
    db.execute("PRAGMA journal_mode = DELETE")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -1000000")  # 1 GB: the random index inserts stay in memory
    db.execute("BEGIN")
    indexes = db.execute(JOB_INDEXES).fetchall()
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for statement in SEED:
        if "active_email" not in columns:  # a schema before migration 11
            statement = statement.replace("email_normalized, active_email,", "email_normalized,")
            statement = statement.replace("a.email_normalized, a.email_normalized,",
                                          "a.email_normalized,")
        db.execute(statement, {"n": n})
    for _, sql in indexes:
        db.execute(sql)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    print(f"seeded {n} customers in {time.monotonic() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
