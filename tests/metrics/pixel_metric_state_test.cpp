// Pixel-level metrics and AU-PRO: hand-computed curves, a brute-force
// reference, the edge cases of the metric definitions, input validation, and
// bit-identical merging over any split of the images.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "metrics/metrics.h"
#include "metrics_reference.h"

namespace winclip::metrics {
namespace {

using testing::RefImage;

PixelMetricState state_of(const std::vector<RefImage>& images, size_t first = 0) {
    PixelMetricState state;
    for (size_t i = 0; i < images.size(); ++i) {
        const RefImage& im = images[i];
        state.add_image("img" + std::to_string(first + i), im.mask.data(), im.map.data(),
                        im.height, im.width);
    }
    return state;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

void expect_bit_identical(const PixelMetrics& a, const PixelMetrics& b, const std::string& what) {
    EXPECT_TRUE(same_bits(a.pixel_auroc, b.pixel_auroc)) << what;
    EXPECT_TRUE(same_bits(a.pixel_aupr, b.pixel_aupr)) << what;
    EXPECT_TRUE(same_bits(a.pixel_f1_max, b.pixel_f1_max)) << what;
    EXPECT_TRUE(same_bits(a.pixel_f1_threshold, b.pixel_f1_threshold)) << what;
    EXPECT_TRUE(same_bits(a.au_pro, b.au_pro)) << what;
    ASSERT_EQ(a.pro_curve_fpr.size(), b.pro_curve_fpr.size()) << what;
    EXPECT_EQ(0, std::memcmp(a.pro_curve_fpr.data(), b.pro_curve_fpr.data(),
                             a.pro_curve_fpr.size() * sizeof(double))) << what;
    EXPECT_EQ(0, std::memcmp(a.pro_curve_pro.data(), b.pro_curve_pro.data(),
                             a.pro_curve_pro.size() * sizeof(double))) << what;
}

RefImage image_from(int height, int width, std::vector<uint8_t> mask, std::vector<float> map) {
    RefImage im;
    im.height = height;
    im.width = width;
    im.mask = std::move(mask);
    im.map = std::move(map);
    return im;
}

TEST(PixelMetrics, TiesEverywhere) {
    // All pixels score 0.5: one threshold. ROC and PRO curves are the straight
    // line from (0, 0) to (1, 1): AUROC 1/2; AU-PRO at 0.3 is the triangle
    // 0.3 * 0.3 / 2 divided by 0.3 = 0.15; at 1.0 it is 1/2.
    std::vector<uint8_t> mask(20, 0);
    mask[3] = mask[4] = mask[17] = 1;
    const std::vector<RefImage> images{image_from(4, 5, mask, std::vector<float>(20, 0.5f))};
    PixelComputeOptions options;
    options.keep_curve = true;
    const PixelMetrics m = state_of(images).compute(options);
    EXPECT_NEAR(m.pixel_auroc, 0.5, 1e-15);
    EXPECT_NEAR(m.pixel_aupr, 3.0 / 20.0, 1e-15);
    EXPECT_NEAR(m.pixel_f1_max, 6.0 / 23.0, 1e-15);
    EXPECT_EQ(m.pixel_f1_threshold, 0.5);
    EXPECT_NEAR(m.au_pro, 0.15, 1e-15);
    EXPECT_EQ(m.pro_curve_fpr, (std::vector<double>{0.0, 0.3}));
    EXPECT_NEAR(m.pro_curve_pro[1], 0.3, 1e-15);
    options.pro_limit = 1.0;
    EXPECT_NEAR(state_of(images).compute(options).au_pro, 0.5, 1e-15);
}

TEST(PixelMetrics, HugeAndNegativeScoresAreUsedAsGiven) {
    // Float extremes and negative values; a sigmoid or min-max squash would
    // merge some of them into ties and change every value below.
    const float big = 3.0e38f;
    std::vector<float> map{big, -big, 1e-30f, -1e-30f, 2.5e37f, -7.0f, 0.0f, -0.0f, 1e20f};
    std::vector<uint8_t> mask{1, 0, 1, 0, 0, 1, 0, 0, 1};
    const std::vector<RefImage> images{image_from(3, 3, mask, map)};
    const PixelMetrics m = state_of(images).compute();
    const auto ref = testing::reference_pixel(images, 0.3);
    EXPECT_NEAR(m.pixel_auroc, ref.auroc, 1e-15);
    EXPECT_NEAR(m.pixel_aupr, ref.aupr, 1e-15);
    EXPECT_NEAR(m.pixel_f1_max, ref.f1_max, 1e-15);
    EXPECT_EQ(m.pixel_f1_threshold, ref.f1_threshold);
    EXPECT_NEAR(m.au_pro, ref.au_pro, 1e-15);
    // The same ranking in small numbers (0.0 and -0.0 are one tied value).
    const std::vector<RefImage> ranked{
        image_from(3, 3, mask, {8, 0, 5, 3, 7, 1, 4, 4, 6})};
    const PixelMetrics r = state_of(ranked).compute();
    EXPECT_EQ(m.pixel_auroc, r.pixel_auroc);
    EXPECT_EQ(m.pixel_aupr, r.pixel_aupr);
    EXPECT_EQ(m.au_pro, r.au_pro);
}

TEST(PixelMetrics, SinglePixelRegionInCorner) {
    // The bottom-right pixel is the only anomalous one and scores highest:
    // PRO is 1 from FPR 0 on, so AU-PRO is exactly 1 at any limit.
    std::vector<uint8_t> mask(6 * 7, 0);
    mask.back() = 255;
    std::vector<float> map(42);
    for (size_t i = 0; i < map.size(); ++i) map[i] = 0.01f * static_cast<float>(i);
    const std::vector<RefImage> images{image_from(6, 7, mask, map)};
    const PixelMetrics m = state_of(images).compute();
    EXPECT_EQ(m.regions, 1u);
    EXPECT_EQ(m.anomalous_pixels, 1u);
    EXPECT_NEAR(m.au_pro, 1.0, 1e-15);
    EXPECT_NEAR(m.pixel_auroc, 1.0, 1e-15);
    EXPECT_NEAR(m.pixel_f1_max, 1.0, 1e-15);
    EXPECT_EQ(m.pixel_f1_threshold, static_cast<double>(map.back()));
}

TEST(PixelMetrics, RegionsTouchingDiagonallyAreOneRegion) {
    // A 2x2 block and a single pixel touching it at a corner: one region of 5
    // pixels. The block scores 0.9, the pixel 0.1, normal pixels 0.5. With
    // 8-connectivity PRO is 4/5 from FPR 0 to 1, so AU-PRO = 0.8; counting
    // them as two regions (4-connectivity) would give (1 + 0) / 2 = 0.5.
    const std::vector<uint8_t> mask{1, 1, 0, 0,  //
                                    1, 1, 0, 0,  //
                                    0, 0, 1, 0,  //
                                    0, 0, 0, 0};
    std::vector<float> map(16, 0.5f);
    for (int p : {0, 1, 4, 5}) map[p] = 0.9f;
    map[10] = 0.1f;
    const std::vector<RefImage> images{image_from(4, 4, mask, map)};
    PixelComputeOptions options;
    const PixelMetrics m = state_of(images).compute(options);
    EXPECT_EQ(m.regions, 1u);
    EXPECT_NEAR(m.au_pro, 0.8, 1e-12);
    options.pro_limit = 1.0;
    EXPECT_NEAR(state_of(images).compute(options).au_pro, 0.8, 1e-12);
}

TEST(PixelMetrics, MaskValueEncodingsAgree) {
    // {0, 1}, {0, 255} and class ids {0, k} are the same mask.
    std::vector<RefImage> base = testing::random_images(21, 6, 50);
    PixelMetrics results[3];
    const uint8_t values[3] = {1, 255, 7};
    for (int v = 0; v < 3; ++v) {
        std::vector<RefImage> images = base;
        for (auto& im : images) {
            for (auto& m : im.mask) m = m ? values[v] : 0;
        }
        results[v] = state_of(images).compute();
    }
    EXPECT_GT(results[0].regions, 0u);
    expect_bit_identical(results[0], results[1], "{0,1} vs {0,255}");
    expect_bit_identical(results[0], results[2], "{0,1} vs {0,7}");
}

TEST(PixelMetrics, NonSquareImagesMatchBruteForce) {
    // Tall, wide and odd-sized images in one class, ties from quantised maps.
    std::vector<RefImage> images = testing::random_images(33, 5, 16);
    images.push_back(testing::random_images(34, 1, 16)[0]);
    RefImage tall = image_from(11, 3, std::vector<uint8_t>(33, 0), std::vector<float>(33));
    RefImage wide = image_from(2, 17, std::vector<uint8_t>(34, 0), std::vector<float>(34));
    testing::TestRandom rng(35);
    for (RefImage* im : {&tall, &wide}) {
        for (size_t p = 0; p < im->mask.size(); ++p) {
            im->mask[p] = rng.uniform() < 0.3 ? 1 : 0;
            im->map[p] = static_cast<float>(std::floor(rng.uniform() * 10 + im->mask[p] * 3));
        }
        images.push_back(*im);
    }
    for (double limit : {0.3, 0.05, 1.0}) {
        PixelComputeOptions options;
        options.pro_limit = limit;
        const PixelMetrics m = state_of(images).compute(options);
        const auto ref = testing::reference_pixel(images, limit);
        EXPECT_NEAR(m.pixel_auroc, ref.auroc, 1e-12) << limit;
        EXPECT_NEAR(m.pixel_aupr, ref.aupr, 1e-12) << limit;
        EXPECT_NEAR(m.pixel_f1_max, ref.f1_max, 1e-12) << limit;
        EXPECT_EQ(m.pixel_f1_threshold, ref.f1_threshold) << limit;
        EXPECT_NEAR(m.au_pro, ref.au_pro, 1e-12) << limit;
    }
}

TEST(PixelMetrics, MatchesBruteForceOnRandomClasses) {
    for (uint32_t seed = 1; seed <= 8; ++seed) {
        const std::vector<RefImage> images = testing::random_images(seed, 4 + seed % 3, 8 + seed);
        const PixelMetrics m = state_of(images).compute();
        const auto ref = testing::reference_pixel(images, 0.3);
        EXPECT_NEAR(m.pixel_auroc, ref.auroc, 1e-12) << seed;
        EXPECT_NEAR(m.pixel_aupr, ref.aupr, 1e-12) << seed;
        EXPECT_NEAR(m.pixel_f1_max, ref.f1_max, 1e-12) << seed;
        EXPECT_EQ(m.pixel_f1_threshold, ref.f1_threshold) << seed;
        EXPECT_NEAR(m.au_pro, ref.au_pro, 1e-12) << seed;
    }
}

TEST(PixelMetrics, CurveStartsAtOriginAndEndsAtLimit) {
    const std::vector<RefImage> images = testing::random_images(4, 6, 40);
    PixelComputeOptions options;
    options.keep_curve = true;
    options.pro_limit = 0.25;
    const PixelMetrics m = state_of(images).compute(options);
    ASSERT_GE(m.pro_curve_fpr.size(), 2u);
    EXPECT_EQ(m.pro_curve_fpr.front(), 0.0);
    EXPECT_EQ(m.pro_curve_pro.front(), 0.0);
    EXPECT_EQ(m.pro_curve_fpr.back(), 0.25);
    for (size_t i = 1; i < m.pro_curve_fpr.size(); ++i) {
        EXPECT_GE(m.pro_curve_fpr[i], m.pro_curve_fpr[i - 1]);
        EXPECT_GE(m.pro_curve_pro[i], m.pro_curve_pro[i - 1] - 1e-15);  // rounding only
    }
    // Trapezoids over the returned curve reproduce AU-PRO (to rounding, 1e-14).
    double area = 0;
    for (size_t i = 1; i < m.pro_curve_fpr.size(); ++i) {
        area += (m.pro_curve_fpr[i] - m.pro_curve_fpr[i - 1]) *
                (m.pro_curve_pro[i] + m.pro_curve_pro[i - 1]) / 2;
    }
    EXPECT_NEAR(area / 0.25, m.au_pro, 1e-14);
    EXPECT_LE(m.au_pro, 1.0);
}

TEST(PixelMetrics, SizeMismatchNamesImage) {
    std::vector<uint8_t> mask(12, 0);
    std::vector<float> map(12, 0.0f);
    PixelMetricState state;
    try {
        state.add_image("screw/test/scratch_head/003.png", mask.data(), 3, 4, map.data(), 4, 3);
        FAIL() << "no error";
    } catch (const DatasetError& e) {
        EXPECT_NE(std::string(e.what()).find("screw/test/scratch_head/003.png"), std::string::npos)
            << e.what();
    }
    Array<uint8_t> mask_array({3, 4}, mask);
    FloatArray map_array({2, 6}, map);
    EXPECT_THROW(state.add_image("x.png", mask_array, map_array), DatasetError);
    EXPECT_EQ(state.image_count(), 0u);
}

TEST(PixelMetrics, NonFiniteScoreNamesImage) {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        std::vector<uint8_t> mask(6, 0);
        std::vector<float> map(6, 0.25f);
        map[4] = bad;
        PixelMetricState state;
        try {
            state.add_image("bottle/test/broken_large/000.png", mask.data(), map.data(), 2, 3);
            FAIL() << "no error for " << bad;
        } catch (const DatasetError& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find("bottle/test/broken_large/000.png"), std::string::npos) << what;
            EXPECT_NE(what.find("row 1, column 1"), std::string::npos) << what;
        }
    }
}

TEST(PixelMetrics, OneClassGivesNaNWithReason) {
    // Only normal pixels (all masks empty), then only anomalous pixels.
    std::vector<float> map{0.1f, 0.2f, 0.3f, 0.4f};
    PixelMetricState normal_only;
    normal_only.add_image("a", std::vector<uint8_t>(4, 0).data(), map.data(), 2, 2);
    normal_only.add_image("b", nullptr, map.data(), 2, 2);
    PixelMetricState anomalous_only;
    anomalous_only.add_image("c", std::vector<uint8_t>(4, 9).data(), map.data(), 2, 2);
    for (const PixelMetricState* state : {&normal_only, &anomalous_only}) {
        const PixelMetrics m = state->compute();
        EXPECT_TRUE(std::isnan(m.pixel_auroc));
        EXPECT_TRUE(std::isnan(m.pixel_aupr));
        EXPECT_TRUE(std::isnan(m.pixel_f1_max));
        EXPECT_TRUE(std::isnan(m.pixel_f1_threshold));
        EXPECT_TRUE(std::isnan(m.au_pro));
        EXPECT_FALSE(m.reason.empty());
    }
    EXPECT_TRUE(std::isnan(PixelMetricState().compute().au_pro));
}

TEST(PixelMetrics, ProLimitOutsideRangeIsConfigError) {
    const PixelMetricState state = state_of(testing::random_images(2, 3, 10));
    for (double bad : {0.0, -0.1, 1.5, static_cast<double>(NAN)}) {
        PixelComputeOptions options;
        options.pro_limit = bad;
        EXPECT_THROW(state.compute(options), ConfigError) << bad;
    }
}

TEST(PixelMetrics, InvariantUnderStrictlyIncreasingTransform) {
    std::vector<RefImage> images = testing::random_images(17, 6, 64);
    std::vector<RefImage> transformed = images;
    // x -> 5 x^3 - 2 is strictly increasing and keeps these 65 levels distinct
    // in float32; the metrics read only the ranking and the counts.
    auto f = [](float x) { return 5.0f * x * x * x - 2.0f; };
    for (auto& im : transformed) {
        for (auto& v : im.map) v = f(v);
    }
    PixelComputeOptions options;
    options.keep_curve = true;
    const PixelMetrics a = state_of(images).compute(options);
    const PixelMetrics b = state_of(transformed).compute(options);
    EXPECT_TRUE(same_bits(a.pixel_auroc, b.pixel_auroc));
    EXPECT_TRUE(same_bits(a.pixel_aupr, b.pixel_aupr));
    EXPECT_TRUE(same_bits(a.pixel_f1_max, b.pixel_f1_max));
    EXPECT_TRUE(same_bits(a.au_pro, b.au_pro));
    EXPECT_EQ(a.pro_curve_pro, b.pro_curve_pro);
    EXPECT_EQ(static_cast<double>(f(static_cast<float>(a.pixel_f1_threshold))),
              b.pixel_f1_threshold);
}

TEST(PixelMetrics, MergeInvariantOverPartsAndOrders) {
    // Images split over 1, 2, 3 or 7 states (as over ranks), each shipped as
    // bytes and merged in a shuffled order: every value and the curve must be
    // bit-identical to one state holding every image.
    const std::vector<RefImage> images = testing::random_images(42, 23, 20);
    PixelComputeOptions options;
    options.keep_curve = true;
    const PixelMetrics expected = state_of(images).compute(options);
    testing::TestRandom rng(43);
    for (int parts : {1, 2, 3, 7}) {
        for (int shuffle = 0; shuffle < 4; ++shuffle) {
            std::vector<PixelMetricState> states(parts);
            std::vector<int> image_order(images.size());
            for (size_t i = 0; i < images.size(); ++i) image_order[i] = static_cast<int>(i);
            for (size_t i = images.size() - 1; i > 0; --i) {
                std::swap(image_order[i], image_order[rng.below(static_cast<int>(i) + 1)]);
            }
            for (int i : image_order) {
                const RefImage& im = images[i];
                states[rng.below(parts)].add_image("img" + std::to_string(i), im.mask.data(),
                                                   im.map.data(), im.height, im.width);
            }
            std::vector<int> order(parts);
            for (int p = 0; p < parts; ++p) order[p] = p;
            for (int p = parts - 1; p > 0; --p) std::swap(order[p], order[rng.below(p + 1)]);
            PixelMetricState merged;
            for (int p : order) merged.merge(PixelMetricState::deserialize(states[p].serialize()));
            EXPECT_EQ(merged.image_count(), images.size());
            expect_bit_identical(merged.compute(options), expected,
                                 std::to_string(parts) + " parts, shuffle " +
                                     std::to_string(shuffle));
        }
    }
}

TEST(PixelMetrics, ChunkSizeDoesNotChangeResults) {
    // The sweep walks key ranges of bounded size; tiny chunks force many
    // ranges and the in-place path for a single key with more entries than a
    // chunk (the quantised maps tie heavily). Bit-identical to one chunk.
    const std::vector<RefImage> images = testing::random_images(51, 12, 9);
    PixelComputeOptions options;
    options.keep_curve = true;
    const PixelMetricState state = state_of(images);
    const PixelMetrics expected = state.compute(options);
    for (uint64_t chunk : {1, 2, 3, 7, 50, 1000}) {
        options.chunk_entries = chunk;
        expect_bit_identical(state.compute(options), expected, "chunk " + std::to_string(chunk));
    }
}

TEST(PixelMetrics, ClassStateRoundTripsThroughBytes) {
    const std::vector<RefImage> images = testing::random_images(8, 5, 30);
    ClassMetricState state;
    state.pixel = state_of(images);
    for (size_t i = 0; i < images.size(); ++i) state.image.add(i % 2, 0.1 * i);
    const ClassMetricState copy = ClassMetricState::deserialize(state.serialize());
    expect_bit_identical(copy.pixel.compute(), state.pixel.compute(), "round trip");
    EXPECT_EQ(copy.image.compute().auroc, state.image.compute().auroc);
    std::vector<uint8_t> bytes = state.serialize();
    bytes.resize(bytes.size() - 3);
    EXPECT_THROW(ClassMetricState::deserialize(bytes), IoError);
}

TEST(PixelMetrics, StateHoldsAtMostEightBytesPerPixel) {
    // 4 bytes per normal and 8 per anomalous pixel plus 4 per region; the
    // fixed per-image overhead (name, vector headers) is a few hundred bytes.
    RefImage im = image_from(200, 300, std::vector<uint8_t>(60000, 0), std::vector<float>(60000));
    testing::TestRandom rng(6);
    for (size_t p = 0; p < im.map.size(); ++p) {
        im.mask[p] = (p / 300) % 50 < 10 && (p % 300) % 40 < 12 ? 1 : 0;
        im.map[p] = static_cast<float>(rng.uniform());
    }
    const PixelMetricState state = state_of({im});
    const PixelMetrics m = state.compute();
    EXPECT_GT(m.regions, 10u);
    EXPECT_LE(state.memory_bytes(),
              4 * m.normal_pixels + 8 * m.anomalous_pixels + 4 * m.regions + 512);
}

TEST(ScoreKey, OrdersFloatsDescending) {
    const std::vector<float> ascending{-INFINITY, -3e38f, -1.0f, -1e-40f, 0.0f,
                                       1e-40f,    0.5f,   1.0f,  3e38f,   INFINITY};
    for (size_t i = 1; i < ascending.size(); ++i) {
        EXPECT_GT(score_key(ascending[i - 1]), score_key(ascending[i])) << ascending[i];
    }
    for (float v : ascending) EXPECT_EQ(key_score(score_key(v)), v);
    EXPECT_EQ(score_key(-0.0f), score_key(0.0f));
}

}  // namespace
}  // namespace winclip::metrics
