#include <gtest/gtest.h>

#include <vector>

#include "core/array.h"
#include "core/context.h"
#include "core/error.h"
#include "core/log.h"

namespace winclip {
namespace {

TEST(Log, ParsesKnownLevelsAndRejectsOthers) {
    EXPECT_EQ(log::parse_level("debug"), log::Level::kDebug);
    EXPECT_EQ(log::parse_level("error"), log::Level::kError);
    try {
        log::parse_level("loud");
        FAIL() << "expected ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("'loud'"), std::string::npos);
    }
}

TEST(Log, LineCarriesRankLevelAndModule) {
    testing::internal::CaptureStderr();
    log::set_rank(3);
    log::warn("cache", "file {} is truncated", "a.h5");
    log::set_rank(0);
    const std::string line = testing::internal::GetCapturedStderr();
    EXPECT_NE(line.find("[rank 3] WARN  cache: file a.h5 is truncated"), std::string::npos) << line;
}

TEST(Array, ShapeStringAndSize) {
    FloatArray a({2, 3, 4});
    EXPECT_EQ(a.numel(), 24);
    EXPECT_EQ(a.values.size(), 24u);
    EXPECT_EQ(shape_string(a.shape), "[2, 3, 4]");
}

TEST(Context, RecordsCommitAndCores) {
    const auto ctx = build_context();
    EXPECT_TRUE(ctx.contains("git_commit"));
    EXPECT_FALSE(ctx["git_commit"].get<std::string>().empty());
    EXPECT_GE(available_cores(), 1);
}

// The peak resident set grows by at least what was just written to fresh
// memory, and is never below the current resident set.
TEST(Context, ProcessMemoryReflectsTouchedPages) {
    const int64_t before = process_memory_bytes("VmHWM");
    ASSERT_GT(before, 0);
    std::vector<char> block(size_t{64} << 20);
    for (size_t i = 0; i < block.size(); i += 4096) block[i] = static_cast<char>(i);
    const int64_t rss = process_memory_bytes("VmRSS");
    const int64_t peak = process_memory_bytes("VmHWM");
    EXPECT_GE(rss, int64_t{64} << 20);
    EXPECT_GE(peak, rss);
    EXPECT_EQ(process_memory_bytes("NoSuchField"), 0);
    volatile char sink = block[4096];
    (void)sink;
}

}  // namespace
}  // namespace winclip
