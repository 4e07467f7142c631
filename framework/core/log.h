// One levelled logger for the whole program. Every line carries the time, the
// MPI rank, the level and the module:
//   2026-12-04 16:40:01.123 [rank 0] INFO  experiment: 12 cells planned
// Results never go through the logger; logs never go into result files.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace winclip::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_level(Level level);
Level level();
// Set once MPI is up; before that lines say "rank ?" only if set_rank was never called.
void set_rank(int rank);
// Parses "debug", "info", "warn", "error"; throws ConfigError otherwise.
Level parse_level(const std::string& name);

void write(Level level, std::string_view module, const std::string& message);

template <typename... Args>
void debug(std::string_view module, fmt::format_string<Args...> f, Args&&... args) {
    if (level() <= Level::kDebug) write(Level::kDebug, module, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(std::string_view module, fmt::format_string<Args...> f, Args&&... args) {
    if (level() <= Level::kInfo) write(Level::kInfo, module, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(std::string_view module, fmt::format_string<Args...> f, Args&&... args) {
    if (level() <= Level::kWarn) write(Level::kWarn, module, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(std::string_view module, fmt::format_string<Args...> f, Args&&... args) {
    write(Level::kError, module, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace winclip::log
