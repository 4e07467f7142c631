#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace winclip::detail {

void check_failed(const char* expr, const char* file, int line, const std::string& msg) {
    std::fprintf(stderr, "internal error: check failed: %s at %s:%d%s%s\n", expr, file, line,
                 msg.empty() ? "" : ": ", msg.c_str());
    std::fflush(stderr);
    std::abort();
}

}  // namespace winclip::detail
