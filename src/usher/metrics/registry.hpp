// Prometheus metrics: counters, gauges and histograms with fixed buckets,
// grouped in families (one name, one help text, fixed label names), kept by
// one Registry that `usher serve` creates and passes to what records into it,
// and rendered in the text exposition format 0.0.4 (docs/metrics.md).
// Recording is lock-free on a series already looked up; looking a series up
// by label values takes its family's mutex. Depends on nothing of ours.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace usher::metrics {

using LabelNames = std::vector<std::string>;
using LabelValues = std::vector<std::string>;

// A value that only goes up.
class Counter {
public:
  void inc(double amount = 1.0) { m_value.fetch_add(amount, std::memory_order_relaxed); }
  double value() const { return m_value.load(std::memory_order_relaxed); }

private:
  std::atomic<double> m_value{0.0};
};

// A value that goes up and down.
class Gauge {
public:
  void set(double value) { m_value.store(value, std::memory_order_relaxed); }
  void inc(double amount = 1.0) { m_value.fetch_add(amount, std::memory_order_relaxed); }
  void dec(double amount = 1.0) { m_value.fetch_sub(amount, std::memory_order_relaxed); }
  double value() const { return m_value.load(std::memory_order_relaxed); }

private:
  std::atomic<double> m_value{0.0};
};

// Observations counted into fixed upper bounds (`le`), plus their sum.
class Histogram {
public:
  // `bounds`: strictly increasing, finite; +Inf is implied.
  explicit Histogram(const std::vector<double> &bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<std::uint64_t> cumulative; // one per bound, then +Inf
    double sum = 0.0;
  };
  Snapshot snapshot() const;
  const std::vector<double> &bounds() const { return m_bounds; }

private:
  std::vector<double> m_bounds;
  std::unique_ptr<std::atomic<std::uint64_t>[]> m_counts; // per bucket, not cumulative
  std::atomic<double> m_sum{0.0};
};

enum class Type { counter, gauge, histogram };

// One metric name with its label names; a series per distinct label values.
template <class Series>
class Family {
public:
  // The series for `values` (one per label name), created at zero on first use.
  // Throws std::invalid_argument when the count differs from the label names.
  Series &with(const LabelValues &values = {});

  const std::string &name() const { return m_name; }

private:
  friend class Registry;
  Family(std::string name, std::string help, LabelNames labels, Type type,
         std::vector<double> bounds = {})
      : m_name(std::move(name)), m_help(std::move(help)), m_labels(std::move(labels)), m_type(type),
        m_bounds(std::move(bounds)) {}
  void render(std::string &out) const;

  std::string m_name;
  std::string m_help;
  LabelNames m_labels;
  Type m_type;
  std::vector<double> m_bounds;
  mutable std::mutex m_mutex;
  std::map<LabelValues, std::unique_ptr<Series>> m_series;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Bucket bounds for durations in seconds, 1 ms to 10 s.
std::vector<double> duration_buckets();

// The metric families of one process, rendered in registration order.
class Registry {
public:
  Registry() = default;
  Registry(const Registry &) = delete;
  Registry &operator=(const Registry &) = delete;

  // Get-or-create: a second call with the same name, type and label names
  // returns the first family; a name taken by another type or other labels,
  // or an invalid name, throws std::invalid_argument.
  CounterFamily &counter(const std::string &name, const std::string &help, LabelNames labels = {});
  GaugeFamily &gauge(const std::string &name, const std::string &help, LabelNames labels = {});
  HistogramFamily &histogram(const std::string &name, const std::string &help,
                             std::vector<double> bounds, LabelNames labels = {});

  // Every family in the text exposition format 0.0.4.
  std::string render() const;

private:
  struct Entry {
    Type type;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
  };
  Entry &entry(const std::string &name, Type type, const LabelNames &labels,
               const std::vector<double> &bounds);

  mutable std::mutex m_mutex;
  std::vector<std::unique_ptr<Entry>> m_entries;
};

// The content type of render()'s output.
inline constexpr const char *k_content_type = "text/plain; version=0.0.4; charset=utf-8";

// Text-format pieces, exposed for their tests.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
std::string format_value(double value);

} // namespace usher::metrics
