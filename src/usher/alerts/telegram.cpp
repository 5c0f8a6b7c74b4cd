// sendMessage over libcurl (see telegram.hpp).
#include <usher/alerts/telegram.hpp>

#include <algorithm>
#include <cstdint>

#include <curl/curl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <usher/alerts/message.hpp>
#include <usher/util/curl_library.hpp>

namespace usher::alerts {
namespace {

// Answers larger than this are cut: a sendMessage answer is a few KiB.
constexpr std::size_t k_max_answer = 256 * 1024;

bool is_numeric_chat(const std::string &chat_id) {
  const std::string_view digits =
      std::string_view(chat_id).substr(!chat_id.empty() && chat_id.front() == '-' ? 1 : 0);
  return !digits.empty() && digits.size() <= 18 &&
         digits.find_first_not_of("0123456789") == std::string_view::npos;
}

std::size_t on_answer(char *data, std::size_t size, std::size_t count, void *transfer) {
  auto &answer = static_cast<detail::Transfer *>(transfer)->answer;
  const std::size_t bytes = size * count;
  const std::size_t room = k_max_answer - std::min(k_max_answer, answer.size());
  answer.append(data, std::min(bytes, room));
  return bytes;
}

// Called about once a second even while nothing arrives: a non-zero answer
// aborts the transfer (CURLE_ABORTED_BY_CALLBACK).
int on_progress(void *transfer, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto *abort = static_cast<detail::Transfer *>(transfer)->abort;
  return abort != nullptr && abort->load() ? 1 : 0;
}

} // namespace

const char *to_string(SendResult::Outcome outcome) {
  switch (outcome) {
  case SendResult::Outcome::delivered: return "delivered";
  case SendResult::Outcome::rate_limited: return "rate_limited";
  case SendResult::Outcome::migrated: return "migrated";
  case SendResult::Outcome::rejected: return "rejected";
  case SendResult::Outcome::failed: return "failed";
  case SendResult::Outcome::aborted: return "aborted";
  }
  return "failed";
}

SendResult interpret_response(long http_status, std::string_view body) {
  SendResult result;
  result.http_status = http_status;
  const auto json = nlohmann::json::parse(body, nullptr, false);
  const bool is_object = json.is_object();
  if (is_object && json.value("ok", false) && http_status == 200) {
    result.outcome = SendResult::Outcome::delivered;
    return result;
  }
  long code = http_status;
  if (is_object) {
    if (const auto it = json.find("error_code"); it != json.end() && it->is_number_integer()) {
      code = it->get<long>();
    }
    if (const auto it = json.find("description"); it != json.end() && it->is_string()) {
      result.description = it->get<std::string>();
    }
  }
  if (result.description.empty()) {
    result.description =
        http_status == 200 ? "HTTP 200 without \"ok\": true" : fmt::format("HTTP {}", http_status);
  }
  const nlohmann::json parameters =
      is_object && json.contains("parameters") && json["parameters"].is_object()
          ? json["parameters"]
          : nlohmann::json::object();
  if (const auto it = parameters.find("migrate_to_chat_id");
      it != parameters.end() && it->is_number_integer()) {
    result.outcome = SendResult::Outcome::migrated;
    result.migrate_to_chat_id = std::to_string(it->get<std::int64_t>());
    return result;
  }
  if (code == 429 || http_status == 429) {
    result.outcome = SendResult::Outcome::rate_limited;
    if (const auto it = parameters.find("retry_after");
        it != parameters.end() && it->is_number_integer() && it->get<long long>() > 0) {
      result.retry_after = std::chrono::seconds(it->get<long long>());
    }
    return result;
  }
  if (code == 400 || code == 401 || code == 403 || code == 404) {
    result.outcome = SendResult::Outcome::rejected;
    return result;
  }
  result.outcome = SendResult::Outcome::failed;
  return result;
}

std::string send_message_body(const std::string &chat_id, const std::string &html) {
  nlohmann::json body = {
      {"text", html}, {"parse_mode", "HTML"}, {"link_preview_options", {{"is_disabled", true}}}};
  if (is_numeric_chat(chat_id)) {
    body["chat_id"] = std::stoll(chat_id);
  } else {
    body["chat_id"] = chat_id;
  }
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

TelegramClient::TelegramClient(TelegramSettings settings)
    : m_settings(std::move(settings)),
      m_url(m_settings.api_url + "/bot" + m_settings.bot_token + "/sendMessage") {}

TelegramClient::~TelegramClient() {
  if (m_library == nullptr) return;
  m_library->easy_cleanup(static_cast<CURL *>(m_curl));
  m_library->slist_free_all(m_headers);
}

bool TelegramClient::open_handle(std::string &error) {
  if (m_curl != nullptr) return true;
  const auto loaded = curl::library();
  if (!loaded) {
    error = loaded.error().detail;
    return false;
  }
  const curl::Library &lib = **loaded;
  CURL *curl = lib.easy_init();
  if (curl == nullptr) {
    error = "libcurl could not create a handle";
    return false;
  }
  m_library = &lib;
  m_curl = curl;
  m_headers = lib.slist_append(nullptr, "Content-Type: application/json");
  m_headers = lib.slist_append(m_headers, "Expect:"); // no 100-continue round trip
  lib.easy_setopt(curl, CURLOPT_URL, m_url.c_str());
  lib.easy_setopt(curl, CURLOPT_HTTPHEADER, m_headers);
  lib.easy_setopt(curl, CURLOPT_POST, 1L);
  // Threads and signals: no SIGALRM for timeouts.
  lib.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  lib.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                  static_cast<long>(m_settings.connect_timeout.count()));
  lib.easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(m_settings.timeout.count()));
  lib.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  lib.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  lib.easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  lib.easy_setopt(curl, CURLOPT_USERAGENT, "usher/" USHER_VERSION);
  lib.easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_answer);
  lib.easy_setopt(curl, CURLOPT_WRITEDATA, &m_transfer);
  lib.easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  lib.easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
  lib.easy_setopt(curl, CURLOPT_XFERINFODATA, &m_transfer);
  return true;
}

SendResult TelegramClient::send_message(const std::string &chat_id, const std::string &html,
                                        const std::atomic<bool> *abort) {
  if (std::string unavailable; !open_handle(unavailable)) {
    SendResult result;
    result.outcome = SendResult::Outcome::failed;
    result.description = "cannot send: " + unavailable;
    return result;
  }
  const curl::Library &lib = *m_library;
  CURL *curl = static_cast<CURL *>(m_curl);
  const std::string request = send_message_body(chat_id, html);
  m_transfer.answer.clear();
  m_transfer.abort = abort;
  lib.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.size()));
  lib.easy_setopt(curl, CURLOPT_POSTFIELDS, request.data());
  char error[CURL_ERROR_SIZE] = {};
  lib.easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  const CURLcode code = lib.easy_perform(curl);
  lib.easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  lib.easy_setopt(curl, CURLOPT_POSTFIELDS, nullptr);
  m_transfer.abort = nullptr;

  if (code == CURLE_ABORTED_BY_CALLBACK) {
    SendResult result;
    result.outcome = SendResult::Outcome::aborted;
    result.description = "stopped while sending";
    return result;
  }
  if (code != CURLE_OK) {
    SendResult result;
    result.outcome = SendResult::Outcome::failed;
    const std::string detail = error[0] != '\0' ? error : lib.easy_strerror(code);
    result.description = code == CURLE_OPERATION_TIMEDOUT
                             ? fmt::format("no answer from the Bot API within {} ms ({})",
                                           m_settings.timeout.count(), detail)
                             : fmt::format("cannot reach the Bot API: {}", detail);
    // libcurl's messages name hosts, not paths; masked anyway.
    result.description = mask(result.description, m_settings.bot_token);
    return result;
  }
  long status = 0;
  lib.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  auto result = interpret_response(status, m_transfer.answer);
  result.description = mask(result.description, m_settings.bot_token);
  return result;
}

std::string TelegramClient::masked_url() const {
  return m_settings.api_url + "/bot***/sendMessage";
}

} // namespace usher::alerts
