// 8-connected region labelling (MVTec AD's PRO regions), checked on hand-made
// masks and against an independent flood fill on random masks.
#include <gtest/gtest.h>

#include "metrics/regions.h"
#include "metrics_reference.h"

namespace winclip::metrics {
namespace {

std::vector<uint8_t> parse_mask(const std::vector<std::string>& rows) {
    std::vector<uint8_t> mask;
    for (const auto& row : rows) {
        for (char c : row) mask.push_back(c == '.' ? 0 : static_cast<uint8_t>(c));
    }
    return mask;
}

TEST(Regions, SinglePixelInCornerIsOneRegion) {
    const auto mask = parse_mask({".....", ".....", "....#"});
    const RegionLabels r = label_regions(mask.data(), 3, 5);
    ASSERT_EQ(r.sizes.size(), 1u);
    EXPECT_EQ(r.sizes[0], 1u);
    EXPECT_EQ(r.labels[14], 0);
    EXPECT_EQ(r.labels[0], -1);
}

TEST(Regions, DiagonalTouchJoinsRegions) {
    // Two blocks meeting only at a corner form one 8-connected region.
    const auto mask = parse_mask({"##...", "##...", "..##.", "..##."});
    const RegionLabels r = label_regions(mask.data(), 4, 5);
    ASSERT_EQ(r.sizes.size(), 1u);
    EXPECT_EQ(r.sizes[0], 8u);
}

TEST(Regions, AntiDiagonalTouchJoinsRegions) {
    // The north-east neighbour must be joined too (a "/" staircase).
    const auto mask = parse_mask({"...#", "..#.", ".#..", "#..."});
    const RegionLabels r = label_regions(mask.data(), 4, 4);
    ASSERT_EQ(r.sizes.size(), 1u);
    EXPECT_EQ(r.sizes[0], 4u);
}

TEST(Regions, SeparatedBlocksAreNumberedInRasterOrder) {
    const auto mask = parse_mask({"..#..#", "......", "#.....", "#....."});
    const RegionLabels r = label_regions(mask.data(), 4, 6);
    ASSERT_EQ(r.sizes.size(), 3u);
    EXPECT_EQ(r.labels[2], 0);
    EXPECT_EQ(r.labels[5], 1);
    EXPECT_EQ(r.labels[12], 2);
    EXPECT_EQ(r.sizes[2], 2u);
}

TEST(Regions, UShapeMergesLateIntoOneRegion) {
    // The two arms get different provisional labels and meet at the bottom.
    const auto mask = parse_mask({"#...#", "#...#", "#####"});
    const RegionLabels r = label_regions(mask.data(), 3, 5);
    ASSERT_EQ(r.sizes.size(), 1u);
    EXPECT_EQ(r.sizes[0], 9u);
}

TEST(Regions, AnyNonZeroValueIsAnomalous) {
    for (uint8_t v : {1, 7, 255}) {
        std::vector<uint8_t> mask{0, v, 0, 0};
        const RegionLabels r = label_regions(mask.data(), 2, 2);
        ASSERT_EQ(r.sizes.size(), 1u) << "mask value " << int(v);
    }
}

TEST(Regions, NullMaskIsAllNormal) {
    const RegionLabels r = label_regions(nullptr, 3, 4);
    EXPECT_TRUE(r.sizes.empty());
    EXPECT_EQ(r.labels, std::vector<int32_t>(12, -1));
}

TEST(Regions, MatchesFloodFillOnRandomMasks) {
    testing::TestRandom rng(11);
    for (int trial = 0; trial < 200; ++trial) {
        testing::RefImage image;
        image.height = 1 + rng.below(20);
        image.width = 1 + rng.below(20);
        image.mask.resize(static_cast<size_t>(image.height) * image.width);
        for (auto& m : image.mask) m = rng.uniform() < 0.45 ? 1 : 0;
        int count = 0;
        const std::vector<int> expected = testing::flood_fill_regions(image, &count);
        const RegionLabels r = label_regions(image.mask.data(), image.height, image.width);
        ASSERT_EQ(static_cast<int>(r.sizes.size()), count) << "trial " << trial;
        // Both number regions by first pixel in raster order, so labels agree.
        for (size_t p = 0; p < expected.size(); ++p) ASSERT_EQ(r.labels[p], expected[p]);
    }
}

}  // namespace
}  // namespace winclip::metrics
