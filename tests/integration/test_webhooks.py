"""Inbound purchase webhooks (SPEC §9, issue 17): POST /api/v1/webhooks/{provider}.

The signatures are computed here with the providers' documented schemes
(hmac/hashlib): Stripe-Signature and Usher-Signature `t=T,v1=HEX` over
`T.` + raw body, Lemon Squeezy's hex X-Signature over the raw body. Every
refusal is checked to have written nothing (the row counts of every table a
purchase writes); every success is checked in the database.
"""

import hashlib
import hmac
import json
import time
import unittest
import uuid

from usher_harness import (
    ServerTestCase,
    parallel,
    remember_secret,
    unique_email,
    wait_for_job,
)

STRIPE_OLD = "whsec_old_" + uuid.uuid4().hex
STRIPE_NEW = "whsec_new_" + uuid.uuid4().hex
LEMON = "lemon_" + uuid.uuid4().hex
GENERIC = "generic_" + uuid.uuid4().hex
for _secret in (STRIPE_OLD, STRIPE_NEW, LEMON, GENERIC):
    remember_secret(_secret)


def hmac_hex(secret, data):
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def timestamped(secret, body, t=None):
    """A Stripe-Signature / Usher-Signature value for `body` (bytes)."""
    t = int(time.time()) if t is None else t
    return f"t={t},v1={hmac_hex(secret, str(t).encode() + b'.' + body)}"


def stripe_event(email, event_id=None, name="Stripe Buyer", product="course-a",
                 type_="checkout.session.completed"):
    return {
        "id": event_id or "evt_" + uuid.uuid4().hex,
        "object": "event",
        "type": type_,
        "data": {"object": {
            "object": "checkout.session",
            "customer_details": {"email": email, "name": name},
            "metadata": {"product": product},
        }},
    }


def lemon_event(email, order_id=None, name="Lemon Buyer", event_name="order_created"):
    return {
        "meta": {"event_name": event_name},
        "data": {
            "type": "orders",
            "id": order_id or str(uuid.uuid4().int % 10**9),
            "attributes": {
                "user_email": email,
                "user_name": name,
                "first_order_item": {"product_name": "Course L"},
            },
        },
    }


def encode(event):
    return json.dumps(event, separators=(",", ":")).encode()


class WebhookCase(ServerTestCase):
    server_name = "webhooks"
    server_mode = "sync_direct"
    server_env = {
        "WEBHOOK_SECRET_STRIPE": f"{STRIPE_OLD}, {STRIPE_NEW}",
        "WEBHOOK_SECRET_LEMONSQUEEZY": LEMON,
        "WEBHOOK_SECRET_GENERIC": GENERIC,
    }

    def post(self, provider, body, headers):
        return self.server.request("POST", f"/api/v1/webhooks/{provider}", body=body,
                                   headers={"Content-Type": "application/json", **headers})

    def stripe(self, body, secret=STRIPE_NEW, t=None):
        return self.post("stripe", body, {"Stripe-Signature": timestamped(secret, body, t)})

    def lemon(self, body, secret=LEMON):
        return self.post("lemonsqueezy", body, {"X-Signature": hmac_hex(secret, body)})

    def generic(self, body, secret=GENERIC, t=None):
        return self.post("generic", body, {"Usher-Signature": timestamped(secret, body, t)})

    def accounts_with(self, email):
        return self.server.query("SELECT COUNT(*) FROM accounts WHERE email = ?", (email,))[0][0]

    def lookup(self, email):
        return self.server.get(f"/api/v1/users?email={email}", token="admin")

    def assertNothingWritten(self, before):
        self.assertEqual(self.server.counts(), before)

    def assertRefused(self, resp, status, code, before):
        self.assertProblem(resp, status, code)
        self.assertNothingWritten(before)


class Purchases(WebhookCase):
    def test_stripe_checkout_completed_creates_the_account(self):
        email = unique_email("stripe")
        resp = self.stripe(encode(stripe_event(email)))
        self.assertEqual(resp.status, 201, resp)
        self.assertEqual(resp.json["status"], "created", resp)
        self.assertEqual(resp.json["email"], email)
        self.assertNotIn("activation_token", resp.json)
        user = self.lookup(email)
        self.assertEqual(user.status, 200, user)
        self.assertEqual(user.json["profile"]["full_name"], "Stripe Buyer")
        self.assertEqual(user.json["profile"]["product"], "course-a")
        self.assertEqual(user.json["profile"]["created_by"], "webhook:stripe")

    def test_lemonsqueezy_order_created_creates_the_account(self):
        email = unique_email("lemon")
        resp = self.lemon(encode(lemon_event(email)))
        self.assertEqual(resp.status, 201, resp)
        self.assertNotIn("activation_token", resp.json)
        user = self.lookup(email)
        self.assertEqual(user.status, 200, user)
        self.assertEqual(user.json["profile"]["full_name"], "Lemon Buyer")
        self.assertEqual(user.json["profile"]["product"], "Course L")
        self.assertEqual(user.json["profile"]["created_by"], "webhook:lemonsqueezy")

    def test_generic_purchase_creates_the_account(self):
        email = unique_email("generic")
        body = encode({"id": "order-" + uuid.uuid4().hex, "email": email,
                       "full_name": "Generic Buyer", "product": "course-g"})
        resp = self.generic(body)
        self.assertEqual(resp.status, 201, resp)
        self.assertNotIn("activation_token", resp.json)
        self.assertEqual(self.lookup(email).json["profile"]["created_by"], "webhook:generic")

    def test_rotated_secret_both_secrets_verify(self):
        for secret in (STRIPE_OLD, STRIPE_NEW):
            email = unique_email("rotate")
            resp = self.stripe(encode(stripe_event(email)), secret=secret)
            self.assertEqual(resp.status, 201, resp)
            self.assertEqual(self.accounts_with(email), 1)

    def test_redelivery_replays_the_first_answer(self):
        email = unique_email("redeliver")
        body = encode(stripe_event(email))
        first = self.stripe(body)
        self.assertEqual(first.status, 201, first)
        before = self.server.counts()
        # A later delivery is signed anew (another timestamp), same event.
        again = self.stripe(body, t=int(time.time()) - 5)
        self.assertEqual(again.status, first.status)
        self.assertEqual(again.json, first.json)
        self.assertEqual(self.accounts_with(email), 1)
        self.assertNothingWritten(before)

    def test_concurrent_duplicate_deliveries_make_one_account(self):
        email = unique_email("dup50")
        body = encode(stripe_event(email))
        results = parallel(50, lambda i: self.stripe(body))
        statuses = []
        for r in results:
            self.assertNotIsInstance(r, Exception, r)
            statuses.append(r.status)
            self.assertNotIn(b"activation_token", r.body)
        # The one that ran first creates; the others replay it, or are told to
        # retry (409 while the first is in flight) - a provider retries them.
        self.assertIn(201, statuses, statuses)
        self.assertTrue(set(statuses) <= {201, 409}, statuses)
        self.assertEqual(self.accounts_with(email), 1)
        self.assertEqual(self.server.query(
            "SELECT COUNT(*) FROM tripwire_users t JOIN accounts a ON a.id = t.user_id "
            "WHERE a.email = ?", (email,))[0][0], 1)
        user = self.lookup(email)
        self.assertEqual(user.status, 200, user)
        # A retry after the storm replays the first answer.
        replay = self.stripe(body)
        self.assertEqual(replay.status, 201, replay)
        self.assertEqual(replay.json["user_id"], user.json["id"])

    def test_existing_buyer_is_200_exists(self):
        email = unique_email("exists")
        made = self.server.create_user(email=email)
        self.assertEqual(made.status, 201, made)
        before = self.server.counts()
        resp = self.stripe(encode(stripe_event(email)))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json, {"status": "exists"})
        self.assertNothingWritten(before)
        # Its redelivery too.
        lemon = self.lemon(encode(lemon_event(email)))
        self.assertEqual(lemon.status, 200, lemon)
        self.assertEqual(lemon.json, {"status": "exists"})

    def test_ignored_event_types_write_nothing(self):
        before = self.server.counts()
        cases = [
            self.stripe(encode(stripe_event(unique_email("ign"), type_="invoice.paid"))),
            self.lemon(encode(lemon_event(unique_email("ign"), event_name="subscription_created"))),
            self.generic(encode({"id": "x1", "type": "ping"})),
        ]
        for resp in cases:
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json, {"status": "ignored"})
        self.assertNothingWritten(before)


class QueuedPurchases(WebhookCase):
    """The default mode: a purchase is a queued job (202), provisioned by a worker."""

    server_name = "webhooks-async"
    server_mode = "async_queue"
    server_env = {**WebhookCase.server_env, "QUEUE_POLL_MS": "50", "JOB_BACKOFF_MS": "50"}

    def test_purchase_is_queued_then_provisioned_and_replayed(self):
        email = unique_email("queued")
        body = encode(lemon_event(email))
        first = self.lemon(body)
        self.assertEqual(first.status, 202, first)
        self.assertEqual(first.json["status"], "queued", first)
        self.assertNotIn("activation_token", first.json)
        again = self.lemon(body)
        self.assertEqual((again.status, again.json), (202, first.json))
        job = wait_for_job(self.server, first.json["job_id"], "succeeded")
        self.assertEqual(self.lookup(email).json["id"], job["user_id"])
        self.assertEqual(self.accounts_with(email), 1)
        # Another purchase by the same buyer (a new event id): exists.
        other = self.lemon(encode(lemon_event(email)))
        self.assertEqual((other.status, other.json), (200, {"status": "exists"}))
        self.assertEqual(self.server.query("SELECT COUNT(*) FROM jobs WHERE email = ?",
                                           (email,))[0][0], 1)


class Refusals(WebhookCase):
    def test_wrong_secret(self):
        before = self.server.counts()
        body = encode(stripe_event(unique_email("wrong")))
        self.assertRefused(self.stripe(body, secret="whsec_wrong"), 400, "signature_mismatch",
                           before)
        self.assertRefused(self.lemon(encode(lemon_event(unique_email())), secret="nope"), 400,
                           "signature_mismatch", before)
        self.assertRefused(self.generic(encode({"id": "g", "email": unique_email()}),
                                        secret=STRIPE_NEW), 400, "signature_mismatch", before)

    def test_missing_and_malformed_signature(self):
        before = self.server.counts()
        body = encode(stripe_event(unique_email("nosig")))
        self.assertRefused(self.post("stripe", body, {}), 400, "signature_missing", before)
        self.assertRefused(self.post("stripe", body, {"Stripe-Signature": "garbage"}), 400,
                           "signature_malformed", before)
        self.assertRefused(self.post("lemonsqueezy", body, {"X-Signature": "zz"}), 400,
                           "signature_malformed", before)

    def test_stale_and_future_timestamps(self):
        before = self.server.counts()
        body = encode(stripe_event(unique_email("time")))
        now = int(time.time())
        self.assertRefused(self.stripe(body, t=now - 3600), 400, "signature_stale", before)
        self.assertRefused(self.stripe(body, t=now + 3600), 400, "signature_future", before)
        self.assertRefused(self.generic(encode({"id": "t", "email": unique_email()}),
                                        t=now - 301 - 60), 400, "signature_stale", before)

    def test_truncated_body(self):
        before = self.server.counts()
        body = encode(stripe_event(unique_email("trunc")))
        header = timestamped(STRIPE_NEW, body)
        resp = self.post("stripe", body[:-7], {"Stripe-Signature": header})
        self.assertRefused(resp, 400, "signature_mismatch", before)

    def test_signed_malformed_body(self):
        before = self.server.counts()
        self.assertRefused(self.stripe(b'{"id":"evt_1","type":'), 400, "webhook_body_not_json",
                           before)
        self.assertRefused(self.lemon(b"[1,2,3]"), 400, "webhook_body_not_json", before)
        # JSON, but the purchase lacks its buyer's email.
        event = stripe_event("x@example.com")
        del event["data"]["object"]["customer_details"]["email"]
        self.assertRefused(self.stripe(encode(event)), 400, "webhook_event_invalid", before)

    def test_oversized_body(self):
        before = self.server.counts()
        event = stripe_event(unique_email("big"))
        event["padding"] = "x" * (70 * 1024)
        resp = self.stripe(encode(event))
        self.assertRefused(resp, 413, "payload_too_large", before)

    def test_unknown_provider_is_404(self):
        before = self.server.counts()
        body = encode(stripe_event(unique_email("paypal")))
        resp = self.post("paypal", body, {"Stripe-Signature": timestamped(STRIPE_NEW, body)})
        self.assertRefused(resp, 404, "not_found", before)

    def test_refusals_are_logged_without_the_payload(self):
        email = unique_email("logcheck")
        mark = self.server.log_mark()
        self.stripe(encode(stripe_event(email)), secret="whsec_wrong")
        self.server.wait_for_log(r"webhook stripe refused.*signature_mismatch", since=mark)
        self.assertNotIn(email, self.server.stderr_text(since=mark))


class Unconfigured(WebhookCase):
    server_name = "webhooks-unconfigured"
    server_env = {"WEBHOOK_SECRET_STRIPE": STRIPE_NEW}

    def test_provider_without_a_secret_is_404(self):
        before = self.server.counts()
        body = encode({"id": "g1", "email": unique_email()})
        resp = self.post("generic", body, {"Usher-Signature": timestamped(GENERIC, body)})
        self.assertRefused(resp, 404, "not_found", before)
        resp = self.lemon(encode(lemon_event(unique_email())))
        self.assertRefused(resp, 404, "not_found", before)


if __name__ == "__main__":
    unittest.main()
