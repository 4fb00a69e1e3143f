#pragma once

#include <string_view>

#include <fmt/format.h>

namespace pbx::log {

enum class Level : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Thread-safe. One event per line on stderr: `ts=… level=info comp=store msg="…"`.
// `context` holds extra key=value pairs ("call=abc port=fxs0"), already formatted.
void Write(Level level, std::string_view component, std::string_view message);

// Messages below `level` are dropped; `component` empty sets the default for all.
void SetLevel(Level level, std::string_view component = {});
bool Enabled(Level level, std::string_view component);

// Parses "debug" / "info" / "warn" / "error".
bool ParseLevel(std::string_view name, Level* out);

}  // namespace pbx::log

// PBX_LOG(kInfo, "store", "opened {} at seq {}", path, seq);
#define PBX_LOG(level, component, ...)                                                  \
  do {                                                                                  \
    if (::pbx::log::Enabled(::pbx::log::Level::level, component)) {                     \
      ::pbx::log::Write(::pbx::log::Level::level, component, fmt::format(__VA_ARGS__)); \
    }                                                                                   \
  } while (0)

// Always on: a broken invariant logs and aborts; systemd restarts us and the standby takes
// over. Never CHECK data from the network, the config or the hardware: those get a Status.
#define PBX_CHECK(cond)                                              \
  do {                                                               \
    if (!(cond)) ::pbx::log::CheckFailed(__FILE__, __LINE__, #cond); \
  } while (0)

namespace pbx::log {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr);
}  // namespace pbx::log
