#include <usher/metrics/registry.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace usher::metrics {
namespace {

bool valid_name(std::string_view name, bool label) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return !(label && name.substr(0, 2) == "__");
}

const char *type_name(Type type) {
  switch (type) {
  case Type::counter: return "counter";
  case Type::gauge: return "gauge";
  case Type::histogram: return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` with `extra` (le="...") last; empty when there are no labels.
void append_labels(std::string &out, const LabelNames &names, const LabelValues &values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string &out, std::string_view name, std::string_view suffix,
                   const LabelNames &names, const LabelValues &values, double value,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  out += name;
  out += suffix;
  append_labels(out, names, values, extra_name, extra_value);
  out += ' ';
  out += format_value(value);
  out += '\n';
}

void append_series(std::string &out, const std::string &name, const LabelNames &names,
                   const LabelValues &values, const Counter &counter) {
  append_sample(out, name, "", names, values, counter.value());
}

void append_series(std::string &out, const std::string &name, const LabelNames &names,
                   const LabelValues &values, const Gauge &gauge) {
  append_sample(out, name, "", names, values, gauge.value());
}

void append_series(std::string &out, const std::string &name, const LabelNames &names,
                   const LabelValues &values, const Histogram &histogram) {
  const auto snapshot = histogram.snapshot();
  const auto &bounds = histogram.bounds();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    append_sample(out, name, "_bucket", names, values, static_cast<double>(snapshot.cumulative[i]),
                  "le", format_value(bounds[i]));
  }
  const auto count = static_cast<double>(snapshot.cumulative.back());
  append_sample(out, name, "_bucket", names, values, count, "le", "+Inf");
  append_sample(out, name, "_sum", names, values, snapshot.sum);
  append_sample(out, name, "_count", names, values, count);
}

} // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

std::vector<double> duration_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
}

Histogram::Histogram(const std::vector<double> &bounds)
    : m_bounds(bounds), m_counts(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
  for (std::size_t i = 0; i <= bounds.size(); ++i) m_counts[i].store(0);
}

void Histogram::observe(double value) {
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(m_bounds.begin(), m_bounds.end(), value) - m_bounds.begin());
  m_counts[bucket].fetch_add(1, std::memory_order_relaxed);
  m_sum.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.cumulative.reserve(m_bounds.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= m_bounds.size(); ++i) {
    total += m_counts[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(total);
  }
  snapshot.sum = m_sum.load(std::memory_order_relaxed);
  return snapshot;
}

template <class Series>
Series &Family<Series>::with(const LabelValues &values) {
  if (values.size() != m_labels.size()) {
    throw std::invalid_argument(fmt::format("metric {} takes {} label values, got {}", m_name,
                                            m_labels.size(), values.size()));
  }
  std::lock_guard lock(m_mutex);
  auto &series = m_series[values];
  if (!series) {
    if constexpr (std::is_same_v<Series, Histogram>) {
      series = std::make_unique<Histogram>(m_bounds);
    } else {
      series = std::make_unique<Series>();
    }
  }
  return *series;
}

template <class Series>
void Family<Series>::render(std::string &out) const {
  out += "# HELP ";
  out += m_name;
  out += ' ';
  out += escape_help(m_help);
  out += "\n# TYPE ";
  out += m_name;
  out += ' ';
  out += type_name(m_type);
  out += '\n';
  std::lock_guard lock(m_mutex);
  for (const auto &[values, series] : m_series)
    append_series(out, m_name, m_labels, values, *series);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Entry &Registry::entry(const std::string &name, Type type, const LabelNames &labels,
                                 const std::vector<double> &bounds) {
  if (!valid_name(name, false)) throw std::invalid_argument("invalid metric name: " + name);
  for (const auto &label : labels) {
    if (!valid_name(label, true) || (type == Type::histogram && label == "le")) {
      throw std::invalid_argument(fmt::format("invalid label name {} for {}", label, name));
    }
  }
  if (type == Type::histogram &&
      (!std::is_sorted(bounds.begin(), bounds.end()) ||
       std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end() ||
       std::any_of(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }))) {
    throw std::invalid_argument("histogram bounds must be finite and increasing: " + name);
  }
  for (auto &existing : m_entries) {
    const std::string *existing_name = nullptr;
    const LabelNames *existing_labels = nullptr;
    if (existing->counter) {
      existing_name = &existing->counter->m_name;
      existing_labels = &existing->counter->m_labels;
    } else if (existing->gauge) {
      existing_name = &existing->gauge->m_name;
      existing_labels = &existing->gauge->m_labels;
    } else {
      existing_name = &existing->histogram->m_name;
      existing_labels = &existing->histogram->m_labels;
    }
    if (*existing_name != name) continue;
    if (existing->type != type || *existing_labels != labels ||
        (type == Type::histogram && existing->histogram->m_bounds != bounds)) {
      throw std::invalid_argument("metric registered twice with different shapes: " + name);
    }
    return *existing;
  }
  return *m_entries.emplace_back(std::make_unique<Entry>(Entry{type, nullptr, nullptr, nullptr}));
}

CounterFamily &Registry::counter(const std::string &name, const std::string &help,
                                 LabelNames labels) {
  std::lock_guard lock(m_mutex);
  auto &e = entry(name, Type::counter, labels, {});
  if (!e.counter) e.counter.reset(new CounterFamily(name, help, std::move(labels), Type::counter));
  return *e.counter;
}

GaugeFamily &Registry::gauge(const std::string &name, const std::string &help, LabelNames labels) {
  std::lock_guard lock(m_mutex);
  auto &e = entry(name, Type::gauge, labels, {});
  if (!e.gauge) e.gauge.reset(new GaugeFamily(name, help, std::move(labels), Type::gauge));
  return *e.gauge;
}

HistogramFamily &Registry::histogram(const std::string &name, const std::string &help,
                                     std::vector<double> bounds, LabelNames labels) {
  std::lock_guard lock(m_mutex);
  auto &e = entry(name, Type::histogram, labels, bounds);
  if (!e.histogram) {
    e.histogram.reset(
        new HistogramFamily(name, help, std::move(labels), Type::histogram, std::move(bounds)));
  }
  return *e.histogram;
}

std::string Registry::render() const {
  std::string out;
  std::lock_guard lock(m_mutex);
  for (const auto &e : m_entries) {
    if (e->counter) e->counter->render(out);
    if (e->gauge) e->gauge->render(out);
    if (e->histogram) e->histogram->render(out);
  }
  return out;
}

} // namespace usher::metrics
