#include "core/context.h"

#include <sched.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <ctime>

namespace winclip {
namespace {

// Runs a short read-only command and returns its first line of output.
std::string first_line_of(const std::string& command) {
    std::string out;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return out;
    std::array<char, 256> buffer{};
    if (std::fgets(buffer.data(), buffer.size(), pipe)) out = buffer.data();
    ::pclose(pipe);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

}  // namespace

std::string git_commit() {
    static const std::string commit = [] {
        const std::string dir = WINCLIP_SOURCE_DIR;
        std::string c = first_line_of("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
        if (c.empty()) return std::string("unknown");
        const std::string dirty =
            first_line_of("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null");
        return dirty.empty() ? c : c + "-dirty";
    }();
    return commit;
}

std::string utc_timestamp() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int64_t process_memory_bytes(const std::string& field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    const std::string prefix = field + ":";
    while (std::getline(status, line)) {
        if (line.compare(0, prefix.size(), prefix) == 0)
            return std::strtoll(line.c_str() + prefix.size(), nullptr, 10) * 1024;  // kB
    }
    return 0;
}

int available_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
}

nlohmann::json build_context() {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    nlohmann::json j;
    j["project_version"] = WINCLIP_VERSION;
    j["build_type"] = WINCLIP_BUILD_TYPE;
    j["compiler"] = std::string("g++ ") + __VERSION__;
    j["git_commit"] = git_commit();
    j["host"] = host;
    j["date_utc"] = utc_timestamp();
    return j;
}

}  // namespace winclip
