"""The web UI as HTTP (SPEC §7, docs/ui.md): GET / and its hashed assets from
the binary, their caching, and the security headers on every UI answer."""

import re
import unittest

from usher_harness import UsherServer

CSP_MUST = ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
            "object-src 'none'", "base-uri 'none'"]


class UiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = UsherServer("ui").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def assertSecurityHeaders(self, response):
        csp = response.headers.get("content-security-policy", "")
        for part in CSP_MUST:
            self.assertIn(part, csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertEqual(response.headers.get("x-content-type-options"), "nosniff")
        self.assertEqual(response.headers.get("referrer-policy"), "no-referrer")

    def index(self):
        page = self.server.get("/")
        self.assertEqual(page.status, 200)
        return page

    def assets(self):
        return re.findall(r'(?:src|href)="(/assets/[^"]+)"', self.index().body.decode())

    def test_index_is_html_never_cached_stale(self):
        page = self.index()
        self.assertTrue(page.content_type.startswith("text/html"), page.content_type)
        self.assertEqual(page.headers.get("cache-control"), "no-cache")
        self.assertSecurityHeaders(page)
        html = page.body.decode()
        self.assertIn('<label for="signin-token">API token</label>', html)
        # No inline script or style: everything comes from /assets/.
        self.assertIsNone(re.search(r"<script(?![^>]*\bsrc=)", html))
        self.assertNotIn("<style", html)
        self.assertNotIn(" style=", html)
        self.assertNotRegex(html, r"\son[a-z]+=")

    def test_assets_have_hashed_names_and_are_immutable(self):
        assets = self.assets()
        self.assertTrue(any(a.endswith(".js") for a in assets), assets)
        self.assertTrue(any(a.endswith(".css") for a in assets), assets)
        for path in assets:
            self.assertRegex(path, r"^/assets/[a-z]+\.[0-9a-f]{12}\.(js|css|svg)$")
            answer = self.server.get(path)
            self.assertEqual(answer.status, 200, path)
            self.assertEqual(answer.headers.get("cache-control"),
                             "public, max-age=31536000, immutable")
            self.assertSecurityHeaders(answer)
            kind = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}[
                path.rsplit(".", 1)[1]]
            self.assertTrue(answer.content_type.startswith(kind), (path, answer.content_type))
            self.assertGreater(len(answer.body), 100)

    def test_the_script_never_writes_markup(self):
        script = next(a for a in self.assets() if a.endswith(".js"))
        text = self.server.get(script).body.decode()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            self.assertNotIn(sink, text)
        self.assertNotIn("localStorage", text, "the token is kept per tab only")

    def test_unknown_asset_is_404_with_the_same_headers(self):
        for path in ("/assets/app.js", "/assets/app.000000000000.js", "/assets/nope"):
            answer = self.server.get(path)
            self.assertEqual(answer.status, 404, path)
            self.assertSecurityHeaders(answer)
            self.assertEqual(answer.headers.get("cache-control"), "no-store")
        self.assertEqual(self.server.get("/index.html").status, 404)


if __name__ == "__main__":
    unittest.main()
