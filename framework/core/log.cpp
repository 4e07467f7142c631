#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "core/error.h"

namespace winclip::log {
namespace {

Level g_level = Level::kInfo;
int g_rank = 0;
std::mutex g_mutex;

const char* level_name(Level l) {
    switch (l) {
        case Level::kDebug: return "DEBUG";
        case Level::kInfo: return "INFO ";
        case Level::kWarn: return "WARN ";
        case Level::kError: return "ERROR";
    }
    return "?";
}

}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
void set_rank(int rank) { g_rank = rank; }

Level parse_level(const std::string& name) {
    if (name == "debug") return Level::kDebug;
    if (name == "info") return Level::kInfo;
    if (name == "warn") return Level::kWarn;
    if (name == "error") return Level::kError;
    throw ConfigError("unknown log level '" + name + "' (expected debug, info, warn or error)");
}

void write(Level l, std::string_view module, const std::string& message) {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const std::time_t t = system_clock::to_time_t(now);
    const int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    const std::string line = fmt::format("{}.{:03d} [rank {}] {} {}: {}\n", stamp, ms, g_rank,
                                         level_name(l), module, message);
    std::lock_guard<std::mutex> lock(g_mutex);
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
}

}  // namespace winclip::log
