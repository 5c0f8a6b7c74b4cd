"""A running `usher serve` prunes old rows on its own (issue 14, item 3;
docs/operations.md "Retention"): rows older than the RETENTION_* ages are
written into the database before start, and the maintenance thread deletes
them while keeping recent rows, dead jobs and the rows of succeeded jobs.
The batching and the schedule are unit-tested (tests/unit/retention_test.cpp)."""

import datetime
import unittest

from usher_harness import ServerPerTestCase, unique_email, wait_until


def iso(days_ago=0, hours_ago=0):
    at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        days=days_ago, hours=hours_ago)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class RetentionTest(ServerPerTestCase):
    def add_job(self, conn, status, days_ago, attempts):
        email = unique_email("retention")
        at = iso(days_ago)
        job = conn.execute(
            "INSERT INTO jobs (email, email_normalized, active_email, payload, status, attempts, "
            "run_after, created_at, updated_at) VALUES (?, ?, ?, '{}', ?, ?, ?, ?, ?) RETURNING id",
            (email, email, None if status == "dead" else email, status, attempts, at, at,
             at)).fetchone()[0]
        for attempt in range(1, attempts + 1):
            conn.execute(
                "INSERT INTO job_attempts (job_id, attempt, worker, outcome, started_at, "
                "finished_at, duration_ms) VALUES (?, ?, 'w', ?, ?, ?, 3)",
                (job, attempt, "dead" if status == "dead" else "succeeded", at, at))
        return job

    def test_serve_prunes_rows_past_their_age_and_keeps_the_rest(self):
        server = self.new_server("retention", start=False, env={
            "RETENTION_JOBS_DAYS": "10", "RETENTION_HEALTH_EVENTS_DAYS": "5",
            "RETENTION_ALERTS_DAYS": "7", "RETENTION_BATCH": "3"})
        conn = server.db()
        try:
            old_done = self.add_job(conn, "succeeded", 11, 2)
            new_done = self.add_job(conn, "succeeded", 9, 1)
            old_dead = self.add_job(conn, "dead", 40, 3)
            for days in (6, 6, 6, 6, 6, 6, 6, 4):
                conn.execute("INSERT INTO system_health_logs (event_type, message, created_at) "
                             "VALUES ('INFO', 'retention test', ?)", (iso(days),))
            for status, days in (("sent", 8), ("failed", 8), ("pending", 8), ("sent", 6)):
                conn.execute("INSERT INTO alert_outbox (chat_id, kind, text, status, "
                             "next_attempt_at, created_at) VALUES ('1', 'ERROR', 'x', ?, ?, ?)",
                             (status, iso(days), iso(days)))
            for hours in (25, 23):
                conn.execute("INSERT INTO idempotency_keys (token_id, idempotency_key, "
                             "fingerprint, status_code, response_body, created_at) "
                             "VALUES (1, ?, 'f', 201, '{}', ?)", (f"k{hours}", iso(hours_ago=hours)))
            conn.commit()
        finally:
            conn.close()
        mark = server.log_mark()
        server.start()
        server.wait_for_log(r"retention pruned 2 job attempts, 7 health events, 2 alerts, "
                            r"0 outbound events, 1 idempotency keys", since=mark)

        def attempts_of(job):
            return server.query("SELECT COUNT(*) FROM job_attempts WHERE job_id = ?", (job,))[0][0]
        self.assertEqual(attempts_of(old_done), 0)
        self.assertEqual(attempts_of(new_done), 1)
        self.assertEqual(attempts_of(old_dead), 3)
        self.assertEqual(server.query("SELECT COUNT(*) FROM jobs")[0][0], 3)
        # The health log keeps the recent event and whatever usher wrote since it started.
        old_events = server.query("SELECT COUNT(*) FROM system_health_logs "
                                  "WHERE message = 'retention test'")[0][0]
        self.assertEqual(old_events, 1)
        self.assertEqual(sorted(r[0] for r in server.query("SELECT status FROM alert_outbox")),
                         ["pending", "sent"])
        self.assertEqual([r[0] for r in server.query(
            "SELECT idempotency_key FROM idempotency_keys")], ["k23"])
        # The succeeded job's row still makes a second request for its email a 409.
        email = server.query("SELECT email FROM jobs WHERE id = ?", (old_done,))[0][0]
        self.assertEqual(server.create_user(email).status, 409)
        wait_until(server.alive, what="usher still running")


if __name__ == "__main__":
    unittest.main()
