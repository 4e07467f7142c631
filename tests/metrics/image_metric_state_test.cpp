// Image-level AUROC / AUPR / F1-max: hand-computed cases, a brute-force
// reference, the edge cases that break other tools, and merge invariance.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "metrics/metrics.h"
#include "metrics_reference.h"

namespace winclip::metrics {
namespace {

ImageMetrics compute(const std::vector<int>& labels, const std::vector<double>& scores) {
    ImageMetricState state;
    for (size_t i = 0; i < labels.size(); ++i) state.add(labels[i], scores[i]);
    return state.compute();
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

TEST(ImageMetrics, HandComputedSmallCase) {
    // Scores 0.9(1) 0.8(0) 0.7(1) 0.6(0): pairs won 3 of 4 -> AUROC 0.75;
    // AP = 1/2 * 1 + 1/2 * 2/3; F1 at 0.7: 2*2 / (3 + 2) = 0.8.
    const ImageMetrics m = compute({1, 0, 1, 0}, {0.9, 0.8, 0.7, 0.6});
    EXPECT_NEAR(m.auroc, 0.75, 1e-15);
    EXPECT_NEAR(m.aupr, 0.5 + 0.5 * 2.0 / 3.0, 1e-15);
    EXPECT_NEAR(m.f1_max, 0.8, 1e-15);
    EXPECT_EQ(m.f1_threshold, 0.7);
    EXPECT_TRUE(m.reason.empty());
}

TEST(ImageMetrics, TiesEverywhere) {
    // Every score equal: one threshold, a diagonal ROC (AUROC 1/2), precision
    // P / (P + N) at full recall, F1 = 2P / (2P + N) at that score.
    const ImageMetrics m = compute({1, 0, 0, 1, 0}, {0.25, 0.25, 0.25, 0.25, 0.25});
    EXPECT_NEAR(m.auroc, 0.5, 1e-15);
    EXPECT_NEAR(m.aupr, 2.0 / 5.0, 1e-15);
    EXPECT_NEAR(m.f1_max, 4.0 / 7.0, 1e-15);
    EXPECT_EQ(m.f1_threshold, 0.25);
}

TEST(ImageMetrics, TiesCountOneHalf) {
    // One anomalous and one normal tied at 0.5, one anomalous above:
    // wins 1 + 0.5 of 2 pairs.
    const ImageMetrics m = compute({1, 1, 0}, {0.9, 0.5, 0.5});
    EXPECT_NEAR(m.auroc, 0.75, 1e-15);
}

TEST(ImageMetrics, HugeAndNegativeScoresAreUsedAsGiven) {
    // A hidden sigmoid would flatten these to 0 and 1 and create ties.
    const std::vector<int> labels{1, 0, 1, 0, 1, 0};
    const std::vector<double> scores{1e300, 1e299, -1e200, -1e201, 7e15, -5e-310};
    const ImageMetrics m = compute(labels, scores);
    const auto ref = testing::reference_classification(scores, labels);
    EXPECT_NEAR(m.auroc, ref.auroc, 1e-15);
    EXPECT_NEAR(m.aupr, ref.aupr, 1e-15);
    EXPECT_NEAR(m.f1_max, ref.f1_max, 1e-15);
    EXPECT_EQ(m.f1_threshold, ref.f1_threshold);
    // The same ranking in small numbers gives the same values.
    const ImageMetrics small = compute(labels, {6, 5, 2, 1, 4, 3});
    EXPECT_EQ(m.auroc, small.auroc);
    EXPECT_EQ(m.aupr, small.aupr);
    EXPECT_EQ(m.f1_max, small.f1_max);
}

TEST(ImageMetrics, OneClassGivesNaNWithReason) {
    for (int label : {0, 1}) {
        const ImageMetrics m = compute({label, label, label}, {0.1, 0.2, 0.3});
        EXPECT_TRUE(std::isnan(m.auroc));
        EXPECT_TRUE(std::isnan(m.aupr));
        EXPECT_TRUE(std::isnan(m.f1_max));
        EXPECT_TRUE(std::isnan(m.f1_threshold));
        EXPECT_NE(m.reason.find(label ? "only anomalous" : "only normal"), std::string::npos)
            << m.reason;
    }
    const ImageMetrics empty = ImageMetricState().compute();
    EXPECT_TRUE(std::isnan(empty.auroc));
    EXPECT_FALSE(empty.reason.empty());
}

TEST(ImageMetrics, NonFiniteScoreNamesImage) {
    ImageMetricState state;
    for (double bad : {NAN, INFINITY, -INFINITY}) {
        try {
            state.add(1, bad, "good/007.png");
            FAIL() << "no error for " << bad;
        } catch (const DatasetError& e) {
            EXPECT_NE(std::string(e.what()).find("good/007.png"), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(state.add(2, 0.5, "x.png"), DatasetError);
}

TEST(ImageMetrics, MatchesBruteForceOnRandomData) {
    testing::TestRandom rng(3);
    for (int trial = 0; trial < 50; ++trial) {
        std::vector<int> labels;
        std::vector<double> scores;
        const int n = 2 + rng.below(60);
        for (int i = 0; i < n; ++i) {
            labels.push_back(i < 2 ? i : rng.below(2));
            scores.push_back(std::floor(rng.uniform() * 12) - 4 + 0.5 * labels.back());
        }
        const ImageMetrics m = compute(labels, scores);
        const auto ref = testing::reference_classification(scores, labels);
        EXPECT_NEAR(m.auroc, ref.auroc, 1e-12) << "trial " << trial;
        EXPECT_NEAR(m.aupr, ref.aupr, 1e-12) << "trial " << trial;
        EXPECT_NEAR(m.f1_max, ref.f1_max, 1e-12) << "trial " << trial;
        EXPECT_EQ(m.f1_threshold, ref.f1_threshold) << "trial " << trial;
    }
}

TEST(ImageMetrics, InvariantUnderStrictlyIncreasingTransform) {
    testing::TestRandom rng(5);
    std::vector<int> labels;
    std::vector<double> scores, transformed;
    for (int i = 0; i < 300; ++i) {
        labels.push_back(rng.below(2));
        // Integer scores tie exactly; exp keeps these 44 levels far apart, so
        // the transform is strictly increasing in floating point too.
        scores.push_back(std::round(rng.uniform() * 40) + 3 * labels.back());
        transformed.push_back(std::exp(0.37 * scores.back()) - 100);
    }
    const ImageMetrics a = compute(labels, scores);
    const ImageMetrics b = compute(labels, transformed);
    // Bit-identical: the computation sees only the ranking and the counts.
    EXPECT_TRUE(same_bits(a.auroc, b.auroc));
    EXPECT_TRUE(same_bits(a.aupr, b.aupr));
    EXPECT_TRUE(same_bits(a.f1_max, b.f1_max));
    EXPECT_EQ(std::exp(0.37 * a.f1_threshold) - 100, b.f1_threshold);
}

TEST(ImageMetrics, MergeInvariantOverPartsAndOrders) {
    testing::TestRandom rng(9);
    std::vector<int> labels;
    std::vector<double> scores;
    for (int i = 0; i < 211; ++i) {
        labels.push_back(rng.below(2));
        scores.push_back(std::floor(rng.uniform() * 30) + labels.back() * 3.0);
    }
    ImageMetricState whole;
    for (size_t i = 0; i < labels.size(); ++i) whole.add(labels[i], scores[i]);
    const ImageMetrics expected = whole.compute();
    for (int parts : {1, 2, 3, 7}) {
        for (int shuffle = 0; shuffle < 3; ++shuffle) {
            std::vector<ImageMetricState> states(parts);
            for (size_t i = 0; i < labels.size(); ++i) {
                states[rng.below(parts)].add(labels[i], scores[i]);
            }
            // Merge in a random order, each part through bytes as over MPI.
            std::vector<int> order(parts);
            for (int p = 0; p < parts; ++p) order[p] = p;
            for (int p = parts - 1; p > 0; --p) std::swap(order[p], order[rng.below(p + 1)]);
            ImageMetricState merged;
            for (int p : order) merged.merge(ImageMetricState::deserialize(states[p].serialize()));
            const ImageMetrics got = merged.compute();
            EXPECT_TRUE(same_bits(got.auroc, expected.auroc)) << parts;
            EXPECT_TRUE(same_bits(got.aupr, expected.aupr)) << parts;
            EXPECT_TRUE(same_bits(got.f1_max, expected.f1_max)) << parts;
            EXPECT_TRUE(same_bits(got.f1_threshold, expected.f1_threshold)) << parts;
        }
    }
}

TEST(ImageMetrics, MalformedBytesAreIoError) {
    ImageMetricState state;
    state.add(1, 0.5);
    std::vector<uint8_t> bytes = state.serialize();
    EXPECT_THROW(ImageMetricState::deserialize(bytes.data(), bytes.size() - 1), IoError);
    bytes[0] = 'X';
    EXPECT_THROW(ImageMetricState::deserialize(bytes), IoError);
}

}  // namespace
}  // namespace winclip::metrics
