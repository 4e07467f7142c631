#include "data/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "core/error.h"

namespace winclip::data {
namespace {

std::vector<std::string> twenty_names() {
    std::vector<std::string> names;
    for (int i = 0; i < 20; ++i) {
        names.push_back("train/good/" + std::string(i < 10 ? "00" : "0") + std::to_string(i) +
                        ".png");
    }
    return names;
}

// Published reference values of the two building blocks.
TEST(Sampling, Fnv1a64MatchesReferenceValues) {
    EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
    EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
    EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(Sampling, SplitMix64MatchesReferenceSequence) {
    SplitMix64 rng(0);
    EXPECT_EQ(rng.next(), 0xe220a8397b1dcdafULL);
    EXPECT_EQ(rng.next(), 0x6e789e6aa1b965f4ULL);
    EXPECT_EQ(rng.next(), 0x06c45d188009454fULL);
}

TEST(Sampling, BelowStaysInRange) {
    SplitMix64 rng(42);
    for (uint64_t bound : {1ULL, 2ULL, 3ULL, 7ULL, 20ULL, (1ULL << 63) + 5}) {
        for (int i = 0; i < 200; ++i) EXPECT_LT(rng.below(bound), bound);
    }
}

// These draws pin the algorithm: they were computed once by this
// implementation and must come out the same on every platform, compiler and
// standard library. If one changes, reference sets in published results
// would silently change with it.
TEST(Sampling, GoldenDrawsAreStable) {
    const std::vector<std::string> files = twenty_names();
    auto stems = [](const std::vector<std::string>& drawn) {
        std::vector<std::string> out;
        for (const auto& f : drawn) out.push_back(f.substr(11, 3));
        return out;
    };
    const struct {
        const char* class_name;
        int k;
        uint64_t seed;
        std::vector<std::string> stems;
    } golden[] = {
        {"bottle", 1, 0, {"005"}},
        {"bottle", 4, 0, {"000", "008", "013", "011"}},
        {"bottle", 4, 1, {"013", "007", "014", "009"}},
        {"screw", 8, 2, {"002", "019", "018", "015", "010", "016", "007", "000"}},
    };
    for (const auto& g : golden) {
        EXPECT_EQ(stems(sample_references(g.class_name, files, g.k, g.seed)), g.stems)
            << g.class_name << " k " << g.k << " seed " << g.seed;
    }
    EXPECT_EQ(sampling_key("screw", 8, 2), "winclip-kshot-v1:5:screw:k8:seed2");
}

TEST(Sampling, DrawsAreWithoutReplacement) {
    const std::vector<std::string> files = twenty_names();
    for (uint64_t seed = 0; seed < 50; ++seed) {
        for (int k : {2, 7, 20}) {
            const auto drawn = sample_references("capsule", files, k, seed);
            ASSERT_EQ(drawn.size(), static_cast<size_t>(k));
            const std::set<std::string> unique(drawn.begin(), drawn.end());
            EXPECT_EQ(unique.size(), drawn.size()) << "k " << k << " seed " << seed;
            for (const auto& f : drawn) EXPECT_TRUE(std::count(files.begin(), files.end(), f));
        }
    }
}

TEST(Sampling, DifferentSeedsAndClassesDiffer) {
    const std::vector<std::string> files = twenty_names();
    std::set<std::vector<std::string>> draws;
    for (uint64_t seed = 0; seed < 20; ++seed)
        draws.insert(sample_references("bottle", files, 4, seed));
    // 4845 possible sets; 20 seeds colliding more than a few times would mean
    // the seed is not reaching the generator.
    EXPECT_GE(draws.size(), 18u);
    EXPECT_NE(sample_references("bottle", files, 4, 0), sample_references("screw", files, 4, 0));
}

TEST(Sampling, InputOrderDoesNotMatter) {
    std::vector<std::string> files = twenty_names();
    const auto sorted_draw = sample_references("bottle", files, 5, 3);
    std::reverse(files.begin(), files.end());
    EXPECT_EQ(sample_references("bottle", files, 5, 3), sorted_draw);
}

TEST(Sampling, ZeroShotsGiveEmptyDraw) {
    EXPECT_TRUE(sample_references("bottle", twenty_names(), 0, 0).empty());
    EXPECT_TRUE(sample_references("bottle", {}, 0, 7).empty());
}

TEST(Sampling, TooManyShotsNameClassKAndCount) {
    try {
        sample_references("screw", {"a.png", "b.png", "c.png"}, 4, 0);
        FAIL() << "expected DatasetError";
    } catch (const DatasetError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("screw"), std::string::npos) << message;
        EXPECT_NE(message.find("k = 4"), std::string::npos) << message;
        EXPECT_NE(message.find("has 3"), std::string::npos) << message;
    }
    EXPECT_THROW(sample_references("screw", {"a.png"}, -1, 0), DatasetError);
}

}  // namespace
}  // namespace winclip::data
