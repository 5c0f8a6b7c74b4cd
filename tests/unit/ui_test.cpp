// ui::page_for: which bytes and headers answer a UI path.
#include <gtest/gtest.h>

#include <string>

#include <usher/ui/assets.hpp>
#include <usher/ui/ui.hpp>

namespace {

std::string header(const usher::ui::Page &page, const std::string &name) {
  for (const auto &[key, value] : page.headers) {
    if (key == name) return value;
  }
  return "";
}

void expect_security_headers(const usher::ui::Page &page) {
  const auto csp = header(page, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
  EXPECT_EQ(header(page, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(header(page, "Referrer-Policy"), "no-referrer");
}

} // namespace

TEST(UiPage, IndexIsHtmlAndRevalidated) {
  const auto page = usher::ui::page_for("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(header(page, "Cache-Control"), "no-cache");
  EXPECT_NE(page.body.find("API token"), std::string_view::npos);
  expect_security_headers(page);
}

TEST(UiPage, EveryAssetNamedByIndexIsServedImmutable) {
  const auto index = usher::ui::page_for("/").body;
  int hashed = 0;
  for (const auto &asset : usher::ui::assets()) {
    if (!asset.immutable) continue;
    ++hashed;
    EXPECT_NE(index.find(asset.path), std::string_view::npos) << asset.path;
    const auto page = usher::ui::page_for(asset.path);
    EXPECT_EQ(page.status, 200);
    EXPECT_EQ(page.body, asset.body);
    EXPECT_EQ(header(page, "Cache-Control"), "public, max-age=31536000, immutable");
    expect_security_headers(page);
  }
  EXPECT_EQ(hashed, 3); // app.js, style.css, favicon.svg
}

TEST(UiPage, UnknownPathIs404WithTheSameHeaders) {
  for (const char *path : {"/assets/app.js", "/assets/", "/index.html", "/assets/../etc"}) {
    const auto page = usher::ui::page_for(path);
    EXPECT_EQ(page.status, 404) << path;
    EXPECT_EQ(header(page, "Cache-Control"), "no-store");
    expect_security_headers(page);
  }
}
