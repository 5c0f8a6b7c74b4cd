// Unit tests for metrics/registry and metrics/process: the text exposition
// format 0.0.4 (HELP, TYPE, escaping, histogram buckets), get-or-create and
// the process gauges.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include <usher/metrics/process.hpp>
#include <usher/metrics/registry.hpp>

namespace usher::metrics {
namespace registry_test {

bool contains(const std::string &text, const std::string &piece) {
  return text.find(piece) != std::string::npos;
}

} // namespace registry_test

TEST(MetricsRegistry, CounterRendersHelpTypeAndLabelledSeries) {
  Registry registry;
  auto &requests = registry.counter("t_requests_total", "Requests.", {"route", "status"});
  requests.with({"/a/:id", "200"}).inc();
  requests.with({"/a/:id", "200"}).inc(2);
  requests.with({"unmatched", "404"}).inc();
  EXPECT_EQ(registry.render(), "# HELP t_requests_total Requests.\n"
                               "# TYPE t_requests_total counter\n"
                               "t_requests_total{route=\"/a/:id\",status=\"200\"} 3\n"
                               "t_requests_total{route=\"unmatched\",status=\"404\"} 1\n");
}

TEST(MetricsRegistry, UnlabelledGaugeHasNoBraces) {
  Registry registry;
  auto &depth = registry.gauge("t_depth", "Depth.").with();
  depth.set(5);
  depth.dec(1.5);
  EXPECT_EQ(registry.render(), "# HELP t_depth Depth.\n# TYPE t_depth gauge\nt_depth 3.5\n");
}

TEST(MetricsRegistry, FamilyWithoutSeriesRendersOnlyHelpAndType) {
  Registry registry;
  registry.counter("t_none_total", "Nothing yet.", {"kind"});
  EXPECT_EQ(registry.render(), "# HELP t_none_total Nothing yet.\n# TYPE t_none_total counter\n");
}

TEST(MetricsRegistry, LabelValuesAndHelpAreEscaped) {
  Registry registry;
  registry.gauge("t_escaped", "a \\ back\nslash", {"v"}).with({"q\"uote\\back\nline"}).set(1);
  EXPECT_EQ(registry.render(), "# HELP t_escaped a \\\\ back\\nslash\n"
                               "# TYPE t_escaped gauge\n"
                               "t_escaped{v=\"q\\\"uote\\\\back\\nline\"} 1\n");
  EXPECT_EQ(escape_label_value("plain"), "plain");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  auto &latency = registry.histogram("t_seconds", "Latency.", {0.1, 1.0}, {"route"});
  auto &series = latency.with({"/x"});
  series.observe(0.05);
  series.observe(0.1); // on a bound: counted in that bucket (le)
  series.observe(0.5);
  series.observe(7.0);
  EXPECT_EQ(registry.render(), "# HELP t_seconds Latency.\n"
                               "# TYPE t_seconds histogram\n"
                               "t_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"
                               "t_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
                               "t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"
                               "t_seconds_sum{route=\"/x\"} 7.65\n"
                               "t_seconds_count{route=\"/x\"} 4\n");
}

TEST(MetricsRegistry, UnlabelledHistogramHasOnlyLe) {
  Registry registry;
  registry.histogram("t_batch", "Batch.", {1, 10}).with().observe(3);
  const auto text = registry.render();
  EXPECT_TRUE(registry_test::contains(text, "t_batch_bucket{le=\"1\"} 0\n")) << text;
  EXPECT_TRUE(registry_test::contains(text, "t_batch_bucket{le=\"10\"} 1\n")) << text;
  EXPECT_TRUE(registry_test::contains(text, "t_batch_sum 3\nt_batch_count 1\n")) << text;
}

TEST(MetricsRegistry, ValuesFormatForPrometheus) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(format_value(0.0 / 0.0), "NaN");
  EXPECT_EQ(format_value(1776000000.5), "1776000000.5");
}

TEST(MetricsRegistry, FamiliesRenderInRegistrationOrder) {
  Registry registry;
  registry.gauge("t_b", "B.").with().set(1);
  registry.gauge("t_a", "A.").with().set(2);
  const auto text = registry.render();
  EXPECT_LT(text.find("t_b"), text.find("t_a"));
}

TEST(MetricsRegistry, RegisteringAgainReturnsTheSameFamily) {
  Registry registry;
  auto &first = registry.counter("t_total", "T.", {"k"});
  auto &second = registry.counter("t_total", "T.", {"k"});
  EXPECT_EQ(&first, &second);
  first.with({"x"}).inc();
  EXPECT_EQ(second.with({"x"}).value(), 1);
}

TEST(MetricsRegistry, ConflictingOrInvalidRegistrationsThrow) {
  Registry registry;
  registry.counter("t_total", "T.", {"k"});
  EXPECT_THROW(registry.gauge("t_total", "T."), std::invalid_argument);
  EXPECT_THROW(registry.counter("t_total", "T.", {"other"}), std::invalid_argument);
  EXPECT_THROW(registry.counter("1bad", "T."), std::invalid_argument);
  EXPECT_THROW(registry.counter("t_x", "T.", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("t_h", "H.", {1, 1}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("t_h2", "H.", {1}, {"le"}), std::invalid_argument);
  EXPECT_THROW(registry.counter("t_total", "T.", {"k"}).with({}), std::invalid_argument);
}

TEST(MetricsRegistry, ProcessMetricsReadProcSelf) {
  Registry registry;
  ProcessMetrics process(registry);
  process.refresh();
  const auto value = [&](const char *name) { return registry.gauge(name, "").with().value(); };
  EXPECT_GT(value("process_resident_memory_bytes"), 1024.0 * 1024.0);
  EXPECT_GE(value("process_open_fds"), 3.0); // stdin, stdout, stderr at least
  EXPECT_GE(value("process_threads"), 1.0);
  EXPECT_GT(value("process_start_time_seconds"), 1.7e9);
}

} // namespace usher::metrics
