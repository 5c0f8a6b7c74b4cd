"""When the database cannot take writes, POST /api/v1/users answers 503 with
Retry-After within 10 s (never a 2xx, never a hang), /healthz still answers,
and usher recovers by itself once the database is back."""

import sqlite3
import time
import unittest

from usher_harness import ServerPerTestCase, unique_email


class DatabaseDownTest(ServerPerTestCase):
    def test_locked_database_gives_503_then_recovers(self):
        server = self.new_server("dbdown", env={"DB_BUSY_TIMEOUT_MS": "2000"})
        self.assertEqual(server.create_user().status, 201)
        # Another process takes SQLite's write lock and keeps it.
        blocker = sqlite3.connect(server.db_path, timeout=1, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            email = unique_email("down")
            started = time.monotonic()
            resp = server.create_user(email=email)
            elapsed = time.monotonic() - started
            self.assertProblem(resp, 503, "database_unavailable")
            self.assertIn("retry-after", resp.headers)
            self.assertLess(elapsed, 10.0)
            self.assertEqual(server.healthz().status, 200)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        self.assertEqual(server.query(
            "SELECT COUNT(*) FROM accounts WHERE email_normalized = ?", (email,))[0][0], 0)
        again = server.create_user(email=email)
        self.assertEqual(again.status, 201, again)


if __name__ == "__main__":
    unittest.main()
