// Unit tests for alerts/policy: kinds, the policy built from the
// configuration, and the ALERT_* settings' validation.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include <usher/alerts/policy.hpp>
#include <usher/config/config.hpp>

namespace usher::alerts {
namespace {

using namespace std::chrono_literals;

Result<config::Config> load(const std::map<std::string, std::string> &env) {
  config::Sources sources;
  sources.env = [env](const char *name) -> const char * {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  return config::load(sources);
}

TEST(AlertsPolicy, KindNamesRoundTrip) {
  for (auto kind :
       {AlertKind::critical, AlertKind::switch_, AlertKind::error, AlertKind::resolved}) {
    EXPECT_EQ(parse_alert_kind(to_string(kind)), kind);
    EXPECT_STRNE(emoji(kind), "");
  }
  EXPECT_FALSE(parse_alert_kind("WARNING"));
  EXPECT_FALSE(parse_alert_kind("INFO"));
}

TEST(AlertsPolicy, OffWithoutATokenAndEveryKindByDefault) {
  auto config = load({{"TELEGRAM_ADMIN_CHAT_ID", "1"}});
  ASSERT_TRUE(config);
  const auto off = policy_from(*config);
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.alerts(AlertKind::critical));

  config = load({{"TELEGRAM_BOT_TOKEN", "1:x"},
                 {"TELEGRAM_ADMIN_CHAT_ID", "1, -2,@ops"},
                 {"ALERT_THROTTLE_MS", "1500"},
                 {"USHER_INSTANCE", "api-1"}});
  ASSERT_TRUE(config);
  const auto on = policy_from(*config);
  EXPECT_TRUE(on.enabled());
  EXPECT_EQ(on.chat_ids, (std::vector<std::string>{"1", "-2", "@ops"}));
  for (auto kind :
       {AlertKind::critical, AlertKind::switch_, AlertKind::error, AlertKind::resolved}) {
    EXPECT_TRUE(on.alerts(kind));
  }
  EXPECT_EQ(on.throttle, 1500ms);
  EXPECT_EQ(on.instance, "api-1");
  EXPECT_EQ(config->alert_give_up, 3600000ms);
  EXPECT_EQ(config->telegram_timeout, 5000ms);
}

TEST(AlertsPolicy, KindsAreConfigurable) {
  auto config = load({{"ALERT_KINDS", " critical,ERROR "}});
  ASSERT_TRUE(config);
  const auto policy = policy_from(*config);
  EXPECT_TRUE(policy.alerts(AlertKind::critical));
  EXPECT_TRUE(policy.alerts(AlertKind::error));
  EXPECT_FALSE(policy.alerts(AlertKind::switch_));
  EXPECT_FALSE(policy.alerts(AlertKind::resolved));

  config = load({{"ALERT_KINDS", ""}});
  ASSERT_TRUE(config);
  EXPECT_TRUE(policy_from(*config).kinds.empty());
}

TEST(AlertsPolicy, WarningAndInfoNeverAlert) {
  for (const char *kinds : {"CRITICAL,WARNING", "info", "BOGUS"}) {
    const auto config = load({{"ALERT_KINDS", kinds}});
    ASSERT_FALSE(config) << kinds;
    EXPECT_EQ(config.error().field, "ALERT_KINDS");
  }
}

TEST(AlertsPolicy, TimeoutsAreValidated) {
  EXPECT_FALSE(load({{"TELEGRAM_TIMEOUT_MS", "0"}}));
  EXPECT_FALSE(load({{"ALERT_GIVE_UP_MS", "abc"}}));
  const auto config = load({{"TELEGRAM_TIMEOUT_MS", "1500"},
                            {"TELEGRAM_CONNECT_TIMEOUT_MS", "700"},
                            {"ALERT_GIVE_UP_MS", "2000"},
                            {"ALERT_BACKOFF_MS", "50"},
                            {"ALERT_POLL_MS", "20"}});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->telegram_timeout, 1500ms);
  EXPECT_EQ(config->telegram_connect_timeout, 700ms);
  EXPECT_EQ(config->alert_give_up, 2000ms);
  EXPECT_EQ(config->alert_backoff, 50ms);
  EXPECT_EQ(config->alert_poll_interval, 20ms);
}

TEST(AlertsPolicy, OnlyCriticalFoldsTheHealthLog) {
  EXPECT_TRUE(AlertPolicy::folds_log(AlertKind::critical));
  EXPECT_FALSE(AlertPolicy::folds_log(AlertKind::switch_));
  EXPECT_FALSE(AlertPolicy::folds_log(AlertKind::error));
}

} // namespace
} // namespace usher::alerts
