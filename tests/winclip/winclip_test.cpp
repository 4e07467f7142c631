// Hand-computed checks of the scoring steps: window masks, harmonic
// aggregation (Eq. 3), prototypes, Eq. (1), multi-scale fusion and the
// few-shot association and fusion of Eqs. (4)-(6).
#include "winclip/winclip.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "winclip/settings.h"

namespace winclip::method {
namespace {

constexpr double kTol = 1e-6;  // float32 arithmetic on values of order 1

std::vector<int64_t> column(const torch::Tensor& masks, int64_t w) {
    const torch::Tensor c = masks.select(/*dim=*/1, w).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void expect_values(const torch::Tensor& t, const std::vector<double>& expected, double tol) {
    const torch::Tensor c = t.to(torch::kFloat64).contiguous().reshape({-1});
    ASSERT_EQ(c.numel(), static_cast<int64_t>(expected.size()));
    for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_NEAR(c[i].item<double>(), expected[i], tol) << "index " << i;
    }
}

// ---- window masks ---------------------------------------------------------------

TEST(WindowMasks, Grid3Kernel2HasFourOverlappingWindows) {
    const torch::Tensor m = window_masks(3, 2, 1);
    ASSERT_EQ(m.sizes(), torch::IntArrayRef({4, 4}));
    EXPECT_EQ(m.scalar_type(), torch::kInt64);
    EXPECT_EQ(column(m, 0), (std::vector<int64_t>{0, 1, 3, 4}));
    EXPECT_EQ(column(m, 1), (std::vector<int64_t>{1, 2, 4, 5}));
    EXPECT_EQ(column(m, 2), (std::vector<int64_t>{3, 4, 6, 7}));
    EXPECT_EQ(column(m, 3), (std::vector<int64_t>{4, 5, 7, 8}));
}

TEST(WindowMasks, Stride2TilesTheGrid) {
    const torch::Tensor m = window_masks(4, 2, 2);
    ASSERT_EQ(m.sizes(), torch::IntArrayRef({4, 4}));
    EXPECT_EQ(column(m, 0), (std::vector<int64_t>{0, 1, 4, 5}));
    EXPECT_EQ(column(m, 1), (std::vector<int64_t>{2, 3, 6, 7}));
    EXPECT_EQ(column(m, 2), (std::vector<int64_t>{8, 9, 12, 13}));
    EXPECT_EQ(column(m, 3), (std::vector<int64_t>{10, 11, 14, 15}));
}

TEST(WindowMasks, StrideThatDoesNotDivideLeavesTheEdgeUncovered) {
    // g = 5, k = 3, s = 2: windows start at rows/cols 0 and 2 only.
    const torch::Tensor m = window_masks(5, 3, 2);
    ASSERT_EQ(m.sizes(), torch::IntArrayRef({9, 4}));
    EXPECT_EQ(column(m, 3), (std::vector<int64_t>{12, 13, 14, 17, 18, 19, 22, 23, 24}));
    EXPECT_EQ(window_count_1d(6, 3, 2), 2);  // the 6th row is not covered
}

TEST(WindowMasks, KernelEqualToGridIsOneWindow) {
    const torch::Tensor m = window_masks(3, 3, 1);
    ASSERT_EQ(m.sizes(), torch::IntArrayRef({9, 1}));
    EXPECT_EQ(column(m, 0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(WindowMasks, RejectsImpossibleWindows) {
    EXPECT_THROW(window_masks(3, 4, 1), ConfigError);
    EXPECT_THROW(window_masks(3, 0, 1), ConfigError);
    EXPECT_THROW(window_masks(3, 2, 0), ConfigError);
    EXPECT_THROW(WindowLayout::make(15, {2, 16}, 1), ConfigError);
}

// ---- harmonic aggregation ---------------------------------------------------------

TEST(HarmonicAggregation, Grid3Kernel2HandValues) {
    // Windows w0..w3 as in Grid3Kernel2HasFourOverlappingWindows, scores
    // 0.2, 0.4, 0.5, 1.0. Patch 1 is in w0, w1: 2 / (5 + 2.5); the centre is in
    // all four: 4 / (5 + 2.5 + 2 + 1).
    const torch::Tensor scores = torch::tensor({0.2f, 0.4f, 0.5f, 1.0f}).view({1, 4});
    const torch::Tensor out = harmonic_aggregation(scores, window_masks(3, 2, 1), 3, 0.0);
    ASSERT_EQ(out.sizes(), torch::IntArrayRef({1, 3, 3}));
    expect_values(out, {0.2, 2 / 7.5, 0.4, 2 / 7.0, 4 / 10.5, 2 / 3.5, 0.5, 2 / 3.0, 1.0}, kTol);
}

TEST(HarmonicAggregation, ZeroWindowZeroesEveryPatchItCoversWithoutEps) {
    const torch::Tensor scores = torch::tensor({0.0f, 0.4f, 0.5f, 1.0f}).view({1, 4});
    const torch::Tensor out = harmonic_aggregation(scores, window_masks(3, 2, 1), 3, 0.0);
    // Exactly 0 (not NaN) on patches 0, 1, 3, 4; the rest as without w0.
    expect_values(out, {0.0, 0.0, 0.4, 0.0, 0.0, 2 / 3.5, 0.5, 2 / 3.0, 1.0}, 0.0 + kTol);
    EXPECT_EQ(out[0][0][0].item<float>(), 0.0f);  // exact
    EXPECT_FALSE(out.isnan().any().item<bool>());
}

TEST(HarmonicAggregation, EpsKeepsAZeroWindowFromDominating) {
    // eps = 0.1: patch 0 = 1 / (1 / 0.1) - the mean of (score + eps), so 0.1;
    // patch 1 = 2 / (1 / 0.1 + 1 / 0.5) = 2 / 12.
    const torch::Tensor scores = torch::tensor({0.0f, 0.4f, 0.5f, 1.0f}).view({1, 4});
    const torch::Tensor out = harmonic_aggregation(scores, window_masks(3, 2, 1), 3, 0.1);
    EXPECT_NEAR(out[0][0][0].item<float>(), 0.1, kTol);
    EXPECT_NEAR(out[0][0][1].item<float>(), 2 / 12.0, kTol);
    EXPECT_NEAR(out[0][1][1].item<float>(), 4 / (10 + 2 + 1 / 0.6 + 1 / 1.1), kTol);
}

TEST(HarmonicAggregation, UncoveredPatchIsZeroAndBatchRowsAreIndependent) {
    // g = 3, k = 2, s = 2: one window over patches 0, 1, 3, 4.
    const torch::Tensor scores = torch::tensor({0.6f, 0.3f}).view({2, 1});
    const torch::Tensor out = harmonic_aggregation(scores, window_masks(3, 2, 2), 3, 0.0);
    expect_values(out, {0.6, 0.6, 0, 0.6, 0.6, 0, 0, 0, 0, 0.3, 0.3, 0, 0.3, 0.3, 0, 0, 0, 0},
                  kTol);
}

TEST(HarmonicAggregation, RejectsScoresThatDoNotMatchTheMasks) {
    EXPECT_THROW(harmonic_aggregation(torch::ones({1, 3}), window_masks(3, 2, 1), 3, 0.0),
                 ConfigError);
    EXPECT_THROW(
        harmonic_aggregation(torch::ones({1, 4}), window_masks(4, 2, 1).narrow(1, 0, 4), 3, 0.0),
        ConfigError);  // index 5.. of a 4x4 grid lies outside 3x3
}

TEST(HarmonicMean, HandValuesAndZero) {
    const torch::Tensor v = torch::tensor({0.5f, 0.25f, 1.0f, 0.0f}).view({2, 2});
    // column 0: 2 / (2 + 1) ; column 1: 2 / (4 + inf) = 0
    expect_values(harmonic_mean(v, 0, 0.0), {2 / 3.0, 0.0}, kTol);
    // eps = 1: column 0: 2 / (1 / 1.5 + 1 / 2); column 1: 2 / (1 / 1.25 + 1 / 1)
    expect_values(harmonic_mean(v, 0, 1.0), {2 / (1 / 1.5 + 1 / 2.0), 2 / (0.8 + 1.0)}, kTol);
}

// ---- prototypes and Eq. (1) -------------------------------------------------------

TEST(BuildPrototypes, RawAveragesUnnormalisedEmbeddings) {
    const torch::Tensor normal = torch::tensor({3.f, 4.f, 0.f, 2.f}).view({2, 2});
    const torch::Tensor anomalous = torch::tensor({1.f, -1.f}).view({1, 2});
    const torch::Tensor p = build_prototypes(normal, anomalous, false);
    expect_values(p, {1.5, 3.0, 1.0, -1.0}, kTol);
}

TEST(BuildPrototypes, NormalizedAveragesUnitVectorsThenRenormalises) {
    // (0.6, 0.8) and (0, 1) average to (0.3, 0.9), of length sqrt(0.9).
    const torch::Tensor normal = torch::tensor({3.f, 4.f, 0.f, 2.f}).view({2, 2});
    const torch::Tensor anomalous = torch::tensor({1.f, -1.f}).view({1, 2});
    const torch::Tensor p = build_prototypes(normal, anomalous, true);
    const double n = std::sqrt(0.9);
    expect_values(p, {0.3 / n, 0.9 / n, 1 / std::sqrt(2.0), -1 / std::sqrt(2.0)}, kTol);
    EXPECT_THROW(build_prototypes(torch::ones({2, 3}), torch::ones({2, 4}), true), ConfigError);
    EXPECT_THROW(build_prototypes(torch::ones({0, 3}), torch::ones({2, 3}), true), ConfigError);
}

TEST(AnomalyProbability, TwoClassSoftmaxOfCosineOverTemperature) {
    const torch::Tensor prototypes = torch::tensor({2.f, 0.f, 0.f, 5.f}).view({2, 2});
    // x = (1, 0): cos = (1, 0); T = 0.5: p = 1 / (1 + e^2).
    // x = (1, 1): cos = (1/sqrt2, 1/sqrt2): p = 0.5.
    const torch::Tensor x = torch::tensor({3.f, 0.f, 1.f, 1.f}).view({2, 2});
    expect_values(anomaly_probability(x, prototypes, 0.5), {1 / (1 + std::exp(2.0)), 0.5}, kTol);
    EXPECT_THROW(anomaly_probability(x, torch::ones({3, 2}), 0.5), ConfigError);
}

// ---- zero-shot fusion ---------------------------------------------------------------

// Embedding in the (normal, anomalous) plane whose anomalous probability at
// temperature T is the p of the formula: angle a gives cos = (cos a, sin a).
double prob_at(double angle, double t) {
    return 1 / (1 + std::exp((std::cos(angle) - std::sin(angle)) / t));
}

TEST(ZeroShot, FusesImageAndWindowScalesByHarmonicMean) {
    // g = 2 with 1x1 windows (one per patch) and one 2x2 window.
    const WindowLayout layout = WindowLayout::make(2, {1, 2}, 1);
    const torch::Tensor prototypes = torch::tensor({1.f, 0.f, 0.f, 1.f}).view({2, 2});
    auto at = [](double a) { return std::vector<float>{float(std::cos(a)), float(std::sin(a))}; };
    const std::vector<double> small_angles = {0.1, 0.4, 0.7, 1.2};
    const double image_angle = 0.9, big_angle = 0.3;
    std::vector<float> small;
    for (double a : small_angles) {
        const auto v = at(a);
        small.insert(small.end(), v.begin(), v.end());
    }
    const torch::Tensor image = torch::tensor(at(image_angle)).view({1, 2});
    const torch::Tensor w1 = torch::tensor(small).view({1, 4, 2});
    const torch::Tensor w2 = torch::tensor(at(big_angle)).view({1, 1, 2});

    Settings s = preset("paper");
    s.temperature = 0.2;
    s.window_sizes = {1, 2};
    const ZeroShotResult r = zero_shot(prototypes, image, {w1, w2}, layout, s);
    const double pi = prob_at(image_angle, 0.2), pb = prob_at(big_angle, 0.2);
    expect_values(r.image_scores, {pi}, kTol);
    std::vector<double> expected;
    for (double a : small_angles) {
        expected.push_back(3 / (1 / pi + 1 / prob_at(a, 0.2) + 1 / pb));
    }
    expect_values(r.grid_maps, expected, kTol);
    ASSERT_EQ(r.window_maps.size(), 2u);
    expect_values(r.window_maps[1], {pb, pb, pb, pb}, kTol);

    // Without the image scale only the two window scales are averaged.
    s.image_scale_in_fusion = false;
    const ZeroShotResult r2 = zero_shot(prototypes, image, {w1, w2}, layout, s);
    expected.clear();
    for (double a : small_angles) expected.push_back(2 / (1 / prob_at(a, 0.2) + 1 / pb));
    expect_values(r2.grid_maps, expected, kTol);
    expect_values(r2.image_scores, {pi}, kTol);  // the image score itself is unchanged
}

TEST(ZeroShot, RejectsWindowScalesThatDoNotMatchTheSettings) {
    const WindowLayout layout = WindowLayout::make(3, {2, 3}, 1);
    const torch::Tensor prototypes = torch::randn({2, 4});
    const torch::Tensor image = torch::randn({2, 4});
    EXPECT_THROW(zero_shot(prototypes, image, {torch::randn({2, 4, 4})}, layout, Settings{}),
                 ConfigError);
    EXPECT_THROW(zero_shot(prototypes, image, {torch::randn({2, 4, 4}), torch::randn({2, 2, 4})},
                           layout, Settings{}),
                 ConfigError);
    // A layout built for other window sizes than the settings ask for.
    const WindowLayout other = WindowLayout::make(3, {2}, 1);
    EXPECT_THROW(zero_shot(prototypes, image, {torch::randn({2, 4, 4})}, other, Settings{}),
                 ConfigError);
}

// ---- few-shot ---------------------------------------------------------------------------

TEST(AssociationScores, HalfOneMinusBestCosine) {
    const torch::Tensor memory = torch::tensor({1.f, 0.f, 0.f, 1.f}).view({2, 2});
    // (2, 0): identical direction -> 0; (-1, -1): best cos -1/sqrt2 ->
    // (1 + 1/sqrt2) / 2; (1, -1): best cos 1/sqrt2 -> (1 - 1/sqrt2) / 2.
    const torch::Tensor q = torch::tensor({2.f, 0.f, -1.f, -1.f, 1.f, -1.f}).view({1, 3, 2});
    const double r = 1 / std::sqrt(2.0);
    expect_values(association_scores(q, memory), {0.0, (1 + r) / 2, (1 - r) / 2}, kTol);
}

TEST(AssociationScores, ClampedAtZeroWhenOneMinusCosRoundsNegative) {
    // A query equal to a memory row can have cos slightly above 1 in float32;
    // the score must still be >= 0 and at most float rounding above 0.
    torch::manual_seed(3);
    const torch::Tensor raw = torch::randn({64, 97});
    const FewShotMemory m = build_memory(raw.view({1, 64, 97}), {});
    const torch::Tensor s = association_scores(raw.view({1, 64, 97}), m.patch_tokens);
    EXPECT_GE(s.min().item<float>(), 0.0f);   // exact: clamped
    EXPECT_LE(s.max().item<float>(), 1e-6f);  // float32 rounding of 1 - 1
}

TEST(FewShot, VisionMapIsMeanOfScalesAndFusesWithZeroShot) {
    // g = 2, one 2x2 window scale. References: one image whose patch tokens
    // are e0, e1, e0, e1 and whose single window embedding is e0.
    const WindowLayout layout = WindowLayout::make(2, {2}, 1);
    Settings s = preset("paper");
    s.window_sizes = {2};
    const torch::Tensor ref_patches =
        torch::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 0.f, 0.f, 1.f}).view({1, 4, 2});
    const torch::Tensor ref_windows = torch::tensor({1.f, 0.f}).view({1, 1, 2});
    const FewShotMemory m = build_memory(ref_patches, {ref_windows});
    EXPECT_EQ(m.shots, 1);
    EXPECT_EQ(m.patch_tokens.sizes(), torch::IntArrayRef({4, 2}));

    // Test patches: e0 (score 0), -e0 (best cos 0 -> 0.5), (1,1) (cos 1/sqrt2),
    // -(1,1) (best cos -1/sqrt2). Test window: e1 -> cos 0 -> 0.5 everywhere.
    const torch::Tensor patches =
        torch::tensor({1.f, 0.f, -1.f, 0.f, 1.f, 1.f, -1.f, -1.f}).view({1, 4, 2});
    const torch::Tensor windows = torch::tensor({0.f, 1.f}).view({1, 1, 2});
    ZeroShotResult zero;
    zero.image_scores = torch::tensor({0.3f});
    zero.grid_maps = torch::tensor({0.1f, 0.2f, 0.3f, 0.4f}).view({1, 2, 2});
    const FewShotResult r = few_shot(zero, m, patches, {windows}, layout, s);

    const double q = 1 / std::sqrt(2.0);
    const std::vector<double> patch_map = {0.0, 0.5, (1 - q) / 2, (1 + q) / 2};
    std::vector<double> vision, fused;
    for (int i = 0; i < 4; ++i) {
        vision.push_back((patch_map[i] + 0.5) / 2);
        fused.push_back((0.1 * (i + 1) + vision.back()) / 2);
    }
    expect_values(r.vision_grid_maps, vision, kTol);
    expect_values(r.grid_maps, fused, kTol);
    expect_values(r.image_scores, {(0.3 + vision[3]) / 2}, kTol);
}

TEST(FewShot, RejectsInconsistentReferences) {
    EXPECT_THROW(build_memory(torch::ones({0, 4, 2}), {}), ConfigError);
    EXPECT_THROW(build_memory(torch::ones({2, 4, 2}), {torch::ones({1, 1, 2})}), ConfigError);
}

}  // namespace
}  // namespace winclip::method
