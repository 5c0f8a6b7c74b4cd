// Unit tests for alerts/message: escaping, redaction, Telegram's length after
// entity parsing, truncation that never cuts a tag or an entity, and the
// message of each kind of alert.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <usher/alerts/message.hpp>

namespace usher::alerts {
namespace {

using namespace std::chrono_literals;

// The dynamic text the brief asks to survive the trip: every character that
// means something in HTML or in Telegram's Markdown.
const std::string k_nasty_name =
    "Zoë <b>O'Brien</b> & _Sons_ *[x]* <script>alert(1)</script> &amp;";
const std::string k_nasty_email = "o&connor_*x+tag@example.com";

// Decodes Telegram HTML the way the Bot API does: tags dropped, the four
// named entities and numeric ones decoded. Fails the test on anything
// Telegram would reject (unknown tag, bad nesting, bare <, > or &).
std::string telegram_visible_text(const std::string &html) {
  static const std::vector<std::string> k_tags = {"b", "i", "pre", "code", "u", "s"};
  std::vector<std::string> open;
  std::string out;
  for (std::size_t i = 0; i < html.size();) {
    if (html[i] == '<') {
      const auto close = html.find('>', i);
      EXPECT_NE(close, std::string::npos) << "bare < at " << i;
      if (close == std::string::npos) return out;
      std::string tag = html.substr(i + 1, close - i - 1);
      const bool closing = !tag.empty() && tag[0] == '/';
      if (closing) tag = tag.substr(1);
      EXPECT_NE(std::find(k_tags.begin(), k_tags.end(), tag), k_tags.end()) << "tag " << tag;
      if (closing) {
        EXPECT_FALSE(open.empty()) << "unmatched </" << tag << ">";
        if (!open.empty()) {
          EXPECT_EQ(open.back(), tag);
          open.pop_back();
        }
      } else {
        open.push_back(tag);
      }
      i = close + 1;
    } else if (html[i] == '&') {
      const auto semi = html.find(';', i);
      EXPECT_NE(semi, std::string::npos) << "bare & at " << i;
      if (semi == std::string::npos) return out;
      const std::string entity = html.substr(i, semi - i + 1);
      if (entity == "&lt;") {
        out += '<';
      } else if (entity == "&gt;") {
        out += '>';
      } else if (entity == "&amp;") {
        out += '&';
      } else if (entity == "&quot;") {
        out += '"';
      } else {
        ADD_FAILURE() << "unsupported entity " << entity;
      }
      i = semi + 1;
    } else {
      EXPECT_NE(html[i], '>') << "bare > at " << i;
      out += html[i];
      ++i;
    }
  }
  EXPECT_TRUE(open.empty()) << "unclosed <" << (open.empty() ? "" : open.back()) << ">";
  return out;
}

TEST(AlertsEscape, ReplacesTheThreeHtmlSpecialCharacters) {
  EXPECT_EQ(escape_html("a < b > c & d"), "a &lt; b &gt; c &amp; d");
  EXPECT_EQ(escape_html("&amp;"), "&amp;amp;");
  EXPECT_EQ(escape_html("_*[]()~`#+-=|{}.!\"'"), "_*[]()~`#+-=|{}.!\"'");
  EXPECT_EQ(escape_html(""), "");
}

TEST(AlertsEscape, RoundTripsThroughTelegramsParser) {
  for (const auto &text : {k_nasty_name, k_nasty_email, std::string("ünïcödé 🔀 \u2026")}) {
    EXPECT_EQ(telegram_visible_text(escape_html(text)), text);
  }
}

TEST(AlertsEscape, ReplacesInvalidUtf8) {
  EXPECT_EQ(escape_html(std::string("a\xFF"
                                    "b")),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(escape_html(std::string("\xC3")), "\xEF\xBF\xBD"); // truncated sequence
  EXPECT_EQ(escape_html("é"), "é");
}

TEST(AlertsRedact, HidesSecretKeysAtAnyDepthAndAnyCase) {
  const nlohmann::json details = {
      {"email", "a@example.com"},
      {"Authorization", "Bearer abc"},
      {"nested", {{"api_key", "k"}, {"list", {{{"password", "p"}}, {{"ok", 1}}}}}},
      {"activation_token", "usher_a_xyz"},
      {"client_secret", 5},
      {"Cookie", "s=1"},
      {"reason", "plain"}};
  const auto redacted = redact(details);
  EXPECT_EQ(redacted["email"], "a@example.com");
  EXPECT_EQ(redacted["Authorization"], "[redacted]");
  EXPECT_EQ(redacted["nested"]["api_key"], "[redacted]");
  EXPECT_EQ(redacted["nested"]["list"][0]["password"], "[redacted]");
  EXPECT_EQ(redacted["nested"]["list"][1]["ok"], 1);
  EXPECT_EQ(redacted["activation_token"], "[redacted]");
  EXPECT_EQ(redacted["client_secret"], "[redacted]");
  EXPECT_EQ(redacted["Cookie"], "[redacted]");
  EXPECT_EQ(redacted["reason"], "plain");
}

TEST(AlertsRedact, ScrubsCredentialsInsideText) {
  EXPECT_EQ(scrub_secrets("header Authorization: Bearer abc.def-ghi was sent"),
            "header Authorization: Bearer [redacted] was sent");
  EXPECT_EQ(scrub_secrets("token usher_0123456789abcdefghijABCDEFGHIJ_-xyz leaked"),
            "token [redacted] leaked");
  EXPECT_EQ(scrub_secrets("bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw3 here"),
            "bot [redacted] here");
  // Ordinary words and numbers stay.
  EXPECT_EQ(scrub_secrets("usher_test job 12:30 id 1234567:short"),
            "usher_test job 12:30 id 1234567:short");
  EXPECT_EQ(redact(nlohmann::json("Bearer xyz")).get<std::string>(), "Bearer [redacted]");
}

TEST(AlertsMask, ReplacesEveryOccurrence) {
  EXPECT_EQ(mask("https://x/botSECRET/sendMessage SECRET", "SECRET"),
            "https://x/bot***/sendMessage ***");
  EXPECT_EQ(mask("nothing", ""), "nothing");
}

TEST(AlertsLength, CountsTextAfterEntityParsingInUtf16Units) {
  EXPECT_EQ(visible_length(""), 0u);
  EXPECT_EQ(visible_length("<b>abc</b>"), 3u);
  EXPECT_EQ(visible_length("&lt;&amp;&gt;"), 3u);
  EXPECT_EQ(visible_length("é"), 1u);          // two bytes, one unit
  EXPECT_EQ(visible_length("\U0001F500"), 2u); // outside the BMP: a surrogate pair
  EXPECT_EQ(visible_length("<pre>{\n}</pre>"), 3u);
}

TEST(AlertsTruncate, LeavesShortTextAlone) {
  EXPECT_EQ(truncate_html("<b>abc</b>", 3, "!"), "<b>abc</b>");
}

TEST(AlertsTruncate, NeverCutsATagOrAnEntityAndClosesWhatIsOpen) {
  const std::string html =
      "<b>head</b>\n<pre>" + std::string(50, 'x') + "&amp;&lt;" + std::string(50, 'y') + "</pre>";
  for (std::size_t limit = 10; limit < visible_length(html); ++limit) {
    const std::string cut = truncate_html(html, limit, "\n[cut]");
    EXPECT_LE(visible_length(cut), limit) << limit;
    const std::string visible = telegram_visible_text(cut); // fails on a cut tag or entity
    EXPECT_NE(visible.find("[cut]"), std::string::npos);
    EXPECT_EQ(visible.rfind("head", 0), 0u) << cut;
  }
}

TEST(AlertsTruncate, DropsAnElementLeftEmptyAndKeepsUtf8Whole) {
  const std::string html = "<b>ab</b><pre>ééééé</pre>";
  EXPECT_EQ(truncate_html(html, 3, "!"), "<b>ab</b>!");
  EXPECT_EQ(truncate_html(html, 5, "!"), "<b>ab</b><pre>éé</pre>!");
  const std::string emoji = "<i>\U0001F500\U0001F500\U0001F500</i>";
  EXPECT_EQ(truncate_html(emoji, 4, ""), "<i>\U0001F500\U0001F500</i>");
  EXPECT_EQ(truncate_html(emoji, 5, ""), "<i>\U0001F500\U0001F500</i>"); // no half pair
}

EventAlert sample(AlertKind kind) {
  EventAlert alert;
  alert.kind = kind;
  alert.message = "job 7 for " + k_nasty_email + " is dead after 3 attempts";
  alert.time = "2026-11-28T16:25:00.123Z";
  alert.instance = "api-1 <eu>";
  alert.details = {{"full_name", k_nasty_name}, {"email", k_nasty_email}, {"password", "hunter2"}};
  alert.event_id = 42;
  return alert;
}

TEST(AlertsFormat, EachKindHasItsEmojiAndEveryDynamicPartEscaped) {
  const std::vector<std::pair<AlertKind, std::string>> kinds = {{AlertKind::critical, "\U0001F6A8"},
                                                                {AlertKind::switch_, "\U0001F500"},
                                                                {AlertKind::error, "\u274C"},
                                                                {AlertKind::resolved, "\u2705"}};
  for (const auto &[kind, symbol] : kinds) {
    const std::string html = format_event(sample(kind));
    const std::string visible = telegram_visible_text(html);
    EXPECT_EQ(visible.rfind(symbol + " " + to_string(kind) + "\n", 0), 0u) << visible;
    EXPECT_NE(visible.find("job 7 for " + k_nasty_email + " is dead"), std::string::npos);
    EXPECT_NE(visible.find("Time: 2026-11-28T16:25:00.123Z"), std::string::npos);
    EXPECT_NE(visible.find("Instance: api-1 <eu>"), std::string::npos);
    EXPECT_NE(visible.find("Event: #42"), std::string::npos);
    // The details are pretty JSON in <pre>, redacted.
    const auto pre = html.find("<pre>");
    ASSERT_NE(pre, std::string::npos);
    const auto details = nlohmann::json::parse(
        telegram_visible_text(html.substr(pre + 5, html.find("</pre>") - pre - 5)));
    EXPECT_EQ(details["full_name"], k_nasty_name);
    EXPECT_EQ(details["email"], k_nasty_email);
    EXPECT_EQ(details["password"], "[redacted]");
    EXPECT_EQ(html.find("hunter2"), std::string::npos);
    EXPECT_NE(html.find("\n  \"email\""), std::string::npos) << "not pretty-printed";
  }
}

TEST(AlertsFormat, TheRequestIdHasALineOfItsOwnAndLeavesTheDetails) {
  auto alert = sample(AlertKind::error);
  alert.details["request_id"] = "checkout-<42>";
  const std::string html = format_event(alert);
  const std::string visible = telegram_visible_text(html);
  EXPECT_NE(visible.find("\nRequest: checkout-<42>\n"), std::string::npos) << visible;
  EXPECT_NE(html.find("checkout-&lt;42&gt;"), std::string::npos) << "not escaped";
  EXPECT_EQ(visible.find("\"request_id\""), std::string::npos) << "also in the details";
  // Without one, no line.
  EXPECT_EQ(telegram_visible_text(format_event(sample(AlertKind::error))).find("Request:"),
            std::string::npos);
}

TEST(AlertsFormat, ATenKilobyteReasonIsTruncatedToTheLimitAndSaysSo) {
  auto alert = sample(AlertKind::switch_);
  std::string reason;
  while (reason.size() < 10 * 1024) reason += "<&_*[ " + k_nasty_name + " ";
  alert.details["reason"] = reason;
  const std::string html = format_event(alert);
  EXPECT_LE(visible_length(html), k_message_limit);
  EXPECT_GT(visible_length(html), k_message_limit - 200) << "cut much shorter than needed";
  const std::string visible = telegram_visible_text(html);
  EXPECT_NE(visible.find("truncated"), std::string::npos);
  EXPECT_NE(visible.find("job 7 for " + k_nasty_email), std::string::npos) << "the head was cut";
  EXPECT_NE(html.find("</pre>"), std::string::npos);
}

TEST(AlertsFormat, ALongMessageIsTruncatedToo) {
  auto alert = sample(AlertKind::critical);
  alert.message = std::string(9000, '&');
  const std::string html = format_event(alert);
  EXPECT_LE(visible_length(html), k_message_limit);
  telegram_visible_text(html);
}

TEST(AlertsFormat, SummarySaysHowManyMoreInTheWindow) {
  EXPECT_EQ(repeats_line(57, 60s), "\u2026and 57 more in the last 60 s");
  EXPECT_EQ(repeats_line(1, 2500ms), "\u2026and 1 more in the last 3 s");
  EXPECT_EQ(repeats_line(3, 500ms), "\u2026and 3 more in the last 500 ms");
  RepeatSummary summary;
  summary.kind = AlertKind::critical;
  summary.repeats = 57;
  summary.window = 60s;
  summary.latest_message = "queue <down> & out";
  summary.latest_details = {{"token", "t"}};
  summary.time = "2026-11-28T16:26:00.000Z";
  summary.instance = "api-1";
  summary.event_id = 9;
  const std::string visible = telegram_visible_text(format_summary(summary));
  EXPECT_EQ(visible.rfind("\U0001F6A8 CRITICAL (repeated)\n\u2026and 57 more in the last 60 s\n"
                          "Latest: queue <down> & out\n",
                          0),
            0u)
      << visible;
  EXPECT_NE(visible.find("\"token\": \"[redacted]\""), std::string::npos);
}

TEST(AlertsFormat, ResolvedAndTestMessages) {
  ResolvedNotice notice;
  notice.message = "the queue accepts jobs again";
  notice.time = "2026-11-28T16:30:00.000Z";
  notice.instance = "api-1";
  notice.critical_since = "2026-11-28T16:20:00.000Z";
  notice.critical_message = "queue <unavailable>";
  const std::string visible = telegram_visible_text(format_resolved(notice));
  EXPECT_EQ(visible.rfind("\u2705 RESOLVED\nthe queue accepts jobs again\n", 0), 0u) << visible;
  EXPECT_NE(visible.find("CRITICAL since: 2026-11-28T16:20:00.000Z"), std::string::npos);
  EXPECT_NE(visible.find("Was: queue <unavailable>"), std::string::npos);
  EXPECT_EQ(visible.find("Details"), std::string::npos) << "empty details are left out";

  const std::string test = telegram_visible_text(format_test("2026-11-28T16:30:00.000Z", "i<1>"));
  EXPECT_NE(test.find("TEST"), std::string::npos);
  EXPECT_NE(test.find("Instance: i<1>"), std::string::npos);
}

} // namespace
} // namespace usher::alerts
