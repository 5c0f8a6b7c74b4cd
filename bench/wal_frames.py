#!/usr/bin/python3
"""How many WAL frames (pages) a commit of intake's job INSERTs writes into a
copy of a usher SQLite database, with every index and without some, to see
which indexes the WAL's volume (and so the COMMIT and the checkpoints) pays
for. The INSERTs have intake's shape: a job row per random email, queued.

Usage: bench/wal_frames.py DATABASE [PER_COMMIT [COMMITS]]
  DATABASE: a usher database with jobs in it (`KEEP_WORK=1
  bench/profile.sh intake 10` leaves one); it is read, never written: the
  measurement runs on a copy in the temporary directory.
"""
import os
import random
import shutil
import sqlite3
import string
import sys
import tempfile

# The indexes on a job's email, dropped one more per variant (those the
# database has: jobs_email_normalized_id until migration 14, jobs_dead_email since).
EMAIL_INDEXES = ["jobs_email_normalized_id", "jobs_dead_email", "jobs_active_email_key"]


def frames_per_commit(source, drop, per_commit, commits):
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "copy.db")
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(db)
        src.backup(dst)
        src.close()
        dst.close()
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        for index in drop:
            conn.execute(f"DROP INDEX {index}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        payload, token_id = conn.execute(
            "SELECT payload, created_by_token_id FROM jobs LIMIT 1").fetchone()
        now = "2026-12-07T22:00:00.000Z"
        for _ in range(commits):
            conn.execute("BEGIN")
            for _ in range(per_commit):
                email = "".join(random.choices(string.ascii_lowercase, k=12)) + "@example.com"
                conn.execute(
                    "INSERT INTO jobs (email, email_normalized, active_email, payload, status, "
                    "attempts, created_by_token_id, run_after, created_at, updated_at, "
                    "activation_token_hash, activation_expires_at) "
                    "VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?)",
                    (email, email, email, payload, token_id, now, now, now,
                     "".join(random.choices("0123456789abcdef", k=64)), now))
            conn.execute("COMMIT")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        frames = (os.path.getsize(db + "-wal") - 32) / (page + 24)  # read before close() checkpoints
        conn.close()
        return frames / commits


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    source = sys.argv[1]
    per_commit = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    commits = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    jobs = sqlite3.connect(f"file:{source}?mode=ro", uri=True).execute(
        "SELECT COUNT(*) FROM jobs").fetchone()[0]
    print(f"# {jobs} jobs in {source}; {commits} commits of {per_commit} job INSERTs each", flush=True)
    present = [name for (name,) in sqlite3.connect(f"file:{source}?mode=ro", uri=True).execute(
        "SELECT name FROM sqlite_schema WHERE type = 'index'") if name in EMAIL_INDEXES]
    present.sort(key=EMAIL_INDEXES.index)
    for drop in [present[:n] for n in range(len(present) + 1)]:
        frames = frames_per_commit(source, drop, per_commit, commits)
        name = "every index" if not drop else "without " + ", ".join(drop)
        print(f"{frames:6.1f} frames per commit, {frames / per_commit:5.2f} per job: {name}")


if __name__ == "__main__":
    main()
