#include "node/core/log.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace pbx::log {
namespace {

std::atomic<int> g_default_level{static_cast<int>(Level::kInfo)};
std::mutex g_mu;
std::map<std::string, int, std::less<>>* g_component_levels = nullptr;  // guarded by g_mu

constexpr std::array<std::string_view, 4> kNames = {"debug", "info", "warn", "error"};

// Quotes a message for key=value output: newlines and quotes are escaped so that one
// event stays one line whatever the message holds.
void AppendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

bool ParseLevel(std::string_view name, Level* out) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) {
      *out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

void SetLevel(Level level, std::string_view component) {
  if (component.empty()) {
    g_default_level.store(static_cast<int>(level));
    return;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_component_levels == nullptr)
    g_component_levels = new std::map<std::string, int, std::less<>>;
  (*g_component_levels)[std::string(component)] = static_cast<int>(level);
}

bool Enabled(Level level, std::string_view component) {
  int threshold = g_default_level.load(std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_component_levels != nullptr) {
      auto it = g_component_levels->find(component);
      if (it != g_component_levels->end()) threshold = it->second;
    }
  }
  return static_cast<int>(level) >= threshold;
}

void Write(Level level, std::string_view component, std::string_view message) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::string line = fmt::format(
      "ts={:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z level={} comp={} msg=", tm.tm_year + 1900,
      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000,
      kNames[static_cast<size_t>(level)], component);
  AppendQuoted(line, message);
  line += '\n';
  // One write(2) per event so lines from several threads never interleave.
  ssize_t rc = ::write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

void CheckFailed(const char* file, int line, const char* expr) {
  Write(Level::kError, "check", fmt::format("{}:{}: CHECK failed: {}", file, line, expr));
  std::abort();
}

}  // namespace pbx::log
