"""`usher import FILE.csv` (issue 17 item 4): every row through the intake
with a key of its own, a summary, a rejects file naming each bad row and why,
activation tokens only where asked (0600), and a second run of the same file
creating nothing new."""

import csv
import os
import stat
import tempfile
import unittest

from usher_harness import (ServerTestCase, remember_secret, unique_email, wait_for_job,
                           wait_until)

HEADER = "email,full_name,phone,product"


class ImportTest(ServerTestCase):
    server_name = "import"
    server_mode = "async_queue"

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="usher-import-")
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def write(self, name, text, bom=False):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        return path

    def run_import(self, *args):
        return self.server.cli(["import", *args], timeout=120)

    def jobs_for(self, emails):
        rows = self.server.query("SELECT email_normalized, id, status FROM jobs")
        return {e: (i, s) for e, i, s in rows if e in emails}

    def accounts_for(self, emails):
        rows = self.server.query("SELECT email_normalized FROM accounts")
        return sorted(e for (e,) in rows if e in emails)

    def test_every_kind_of_row_twice(self):
        existing = unique_email("existing")
        self.assertEqual(self.server.create_user(email=existing).status, 202)
        good = [unique_email("ann"), unique_email("bob"), unique_email("cat")]
        text = "\r\n".join([
            "Email, Full_Name ,phone,product",
            f"{good[0]},Ann Archer,+1 555 0100,",
            f'"{good[1].upper()}","Bob ""The Builder"", Jr.",,pro',
            f"{good[2]},Cat \u00c7elik,,",
            "not-an-email,Nobody,,",
            f"{unique_email('nameless')},,,",
            f"{unique_email('phone')},Long Phone,{'1' * 33},",
            f"{good[0]},Ann Twice,,",
            f"{unique_email('fields')},Too,Many,Fields,Here",
            f"{unique_email('ctrl')},Bell\u0007Name,,",
            f"{existing},Existing Buyer,,",
            "",
        ])
        source = self.write("buyers.csv", text, bom=True)
        tokens = self.path("tokens.csv")

        first = self.run_import(source, "--product", "basic", "--tokens", tokens)
        self.assertEqual(first.returncode, 1, first)
        self.assertIn("10 rows: 3 new (3 queued for the workers, 0 created at once), "
                      "1 existed, 6 rejected", first.stdout)
        with open(source + ".rejects.csv", newline="") as f:
            rejects = list(csv.DictReader(f))
        self.assertEqual([(r["line"], r["code"]) for r in rejects], [
            ("5", "email_invalid"), ("6", "field_length"), ("7", "field_length"),
            ("8", "duplicate_in_file"), ("9", "field_count"), ("10", "field_invalid")])
        self.assertEqual(rejects[3]["reason"], "the same email as line 2")
        self.assertIn("phone", rejects[2]["reason"])

        # The tokens file: the owner's alone, one token per new account.
        self.assertEqual(stat.S_IMODE(os.stat(tokens).st_mode), 0o600)
        with open(tokens, newline="") as f:
            issued = {r["email"]: r["activation_token"] for r in csv.DictReader(f)}
        for token in issued.values():
            remember_secret(token)
        self.assertEqual(sorted(issued), sorted(good))

        # The worker provisions each once; the tokens in the file activate them.
        jobs = self.jobs_for(good)
        self.assertEqual(sorted(jobs), sorted(good))
        for email in good:
            wait_for_job(self.server, jobs[email][0], "succeeded")
        self.assertEqual(self.accounts_for(good), sorted(good))
        profile = self.server.query(
            "SELECT t.full_name, t.product, t.created_by FROM tripwire_users t "
            "JOIN accounts a ON a.id = t.user_id WHERE a.email_normalized = ?", (good[1],))
        self.assertEqual(profile, [('Bob "The Builder", Jr.', "pro", "import (buyers.csv)")])
        self.assertEqual(self.server.query(
            "SELECT t.product FROM tripwire_users t JOIN accounts a ON a.id = t.user_id "
            "WHERE a.email_normalized = ?", (good[0],)), [("basic",)])
        activated = self.server.request("POST", "/api/v1/auth/activate",
                                        body={"token": issued[good[2]],
                                              "password": "imported buyer"})
        self.assertEqual(activated.status, 200, activated)

        # The same file again: nothing new, the same rejects.
        before = self.server.counts()
        second = self.run_import(source, "--product", "basic")
        self.assertEqual(second.returncode, 1, second)
        self.assertIn("10 rows: 0 new (0 queued for the workers, 0 created at once), "
                      "4 existed, 6 rejected", second.stdout)
        self.assertEqual(self.server.counts(), before)
        self.assertEqual(len(self.jobs_for(good)), 3)

    def test_a_clean_file_exits_zero_and_a_dry_run_writes_nothing(self):
        emails = [unique_email("dry") for _ in range(3)]
        source = self.write("clean.csv", "\n".join(
            ["full_name,email"] + [f"Buyer {i},{e}" for i, e in enumerate(emails)]) + "\n")
        before = self.server.counts()
        dry = self.run_import(source, "--dry-run", "--tokens", self.path("never.csv"))
        self.assertEqual(dry.returncode, 0, dry)
        self.assertIn("3 rows: 3 would be new, 0 existed, 0 rejected; nothing was written",
                      dry.stdout)
        self.assertEqual(self.server.counts(), before)
        self.assertFalse(os.path.exists(self.path("never.csv")))
        self.assertFalse(os.path.exists(source + ".rejects.csv"))

        real = self.run_import(source)
        self.assertEqual(real.returncode, 0, real)
        self.assertIn("3 rows: 3 new", real.stdout)
        jobs = self.jobs_for(emails)
        for email in emails:
            wait_for_job(self.server, jobs[email][0], "succeeded")

        again = self.run_import(source, "--dry-run")
        self.assertEqual(again.returncode, 0, again)
        self.assertIn("3 rows: 0 would be new, 3 existed, 0 rejected", again.stdout)

    def test_files_usher_cannot_read_are_refused_before_anything_is_written(self):
        existing_tokens = self.write("tokens.csv", "keep me\n")
        cases = [
            ("unknown column", self.write("a.csv", "email,full_name,phone_no\nx@example.com,X,1\n"),
             [], "phone_no"),
            ("missing column", self.write("b.csv", "email,phone\nx@example.com,1\n"), [],
             "full_name"),
            ("empty", self.write("c.csv", ""), [], "empty"),
            ("not CSV", self.write("d.csv", f'email,full_name\n"{unique_email("q")},Open\n'), [],
             "line 2"),
            ("tokens file exists", self.write("e.csv", f"email,full_name\n{unique_email('t')},T\n"),
             ["--tokens", existing_tokens], "must not exist"),
        ]
        for what, source, extra, needle in cases:
            with self.subTest(what):
                before = self.server.counts()
                result = self.run_import(source, *extra)
                self.assertNotEqual(result.returncode, 0, result)
                self.assertIn(needle, result.stderr)
                self.assertEqual(self.server.counts(), before)
        with open(existing_tokens) as f:
            self.assertEqual(f.read(), "keep me\n")
        missing = self.run_import(self.path("nope.csv"))
        self.assertEqual(missing.returncode, 2, missing)


class ImportSyncTest(ServerTestCase):
    server_name = "import-sync"
    server_mode = "sync_direct"

    def test_in_sync_direct_mode_accounts_are_created_at_once(self):
        with tempfile.TemporaryDirectory(prefix="usher-import-") as tmp:
            emails = [unique_email("sync") for _ in range(20)]
            source = os.path.join(tmp, "sync.csv")
            with open(source, "w") as f:
                f.write("email,full_name\n" + "".join(f"{e},Sync Buyer\n" for e in emails))
            result = self.server.cli(["import", source], timeout=120)
            self.assertEqual(result.returncode, 0, result)
            self.assertIn("20 rows: 20 new (0 queued for the workers, 20 created at once)",
                          result.stdout)
            rows = self.server.query("SELECT email_normalized FROM accounts")
            self.assertEqual(sorted(e for (e,) in rows if e in emails), sorted(emails))
            statuses = self.server.query("SELECT email_normalized, status FROM jobs")
            self.assertEqual({s for e, s in statuses if e in emails}, {"succeeded"})
            wait_until(lambda: self.server.get(f"/api/v1/users?email={emails[0]}",
                                               token="sales").status == 200,
                       what="the imported account to be visible through the API")


if __name__ == "__main__":
    unittest.main()
