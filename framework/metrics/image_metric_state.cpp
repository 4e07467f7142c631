#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "metrics/bytes.h"
#include "metrics/metrics.h"
#include "metrics/sweep.h"

namespace winclip::metrics {

namespace {
constexpr char kImageMagic[9] = "WCIMST01";
}

void ImageMetricState::add(int label, double score, std::string_view name) {
    const std::string who = name.empty() ? "image #" + std::to_string(scores_.size())
                                         : "image '" + std::string(name) + "'";
    if (label != 0 && label != 1) {
        throw DatasetError("label must be 0 (normal) or 1 (anomalous), got " +
                           std::to_string(label) + " for " + who);
    }
    if (!std::isfinite(score)) {
        throw DatasetError("image score must be finite, got " + std::to_string(score) + " for " +
                           who);
    }
    // -0.0 and +0.0 are one threshold; store one spelling so the reported
    // threshold does not depend on which of them was seen first.
    scores_.push_back(score == 0.0 ? 0.0 : score);
    labels_.push_back(static_cast<uint8_t>(label));
}

void ImageMetricState::merge(const ImageMetricState& other) {
    scores_.insert(scores_.end(), other.scores_.begin(), other.scores_.end());
    labels_.insert(labels_.end(), other.labels_.begin(), other.labels_.end());
}

std::vector<uint8_t> ImageMetricState::serialize() const {
    std::vector<uint8_t> out;
    detail::ByteWriter w(out);
    w.append(kImageMagic, 8);
    w.put_vector(scores_);
    w.put_vector(labels_);
    return out;
}

ImageMetricState ImageMetricState::deserialize(const uint8_t* data, size_t size) {
    detail::ByteReader r(data, size, "image metric state");
    r.expect_magic(kImageMagic);
    ImageMetricState state;
    std::vector<double> scores = r.get_vector<double>();
    std::vector<uint8_t> labels = r.get_vector<uint8_t>();
    if (scores.size() != labels.size()) r.fail("score and label counts differ");
    if (!r.at_end()) r.fail("trailing bytes");
    for (size_t i = 0; i < scores.size(); ++i) {
        if (labels[i] > 1 || !std::isfinite(scores[i])) r.fail("invalid entry");
    }
    state.scores_ = std::move(scores);
    state.labels_ = std::move(labels);
    return state;
}

ImageMetrics ImageMetricState::compute() const {
    ImageMetrics out;
    for (uint8_t l : labels_) (l ? out.anomalous_count : out.normal_count) += 1;
    if (scores_.empty()) {
        out.reason = "no images";
        return out;
    }
    if (out.anomalous_count == 0) {
        out.reason = "only normal images (no anomalous one): the metrics are undefined";
        return out;
    }
    if (out.normal_count == 0) {
        out.reason = "only anomalous images (no normal one): the metrics are undefined";
        return out;
    }

    // Indices by score, highest first; the sweep sees each distinct score once
    // with the counts of its ties, so the index order among ties is irrelevant.
    std::vector<uint32_t> order(scores_.size());
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return scores_[a] > scores_[b]; });

    detail::SweepConfig config;
    config.negatives = out.normal_count;
    config.positives = out.anomalous_count;
    detail::ThresholdSweep sweep(config);
    size_t i = 0;
    while (i < order.size()) {
        const double threshold = scores_[order[i]];
        uint64_t negatives = 0;
        uint64_t positives = 0;
        for (; i < order.size() && scores_[order[i]] == threshold; ++i) {
            (labels_[order[i]] ? positives : negatives) += 1;
        }
        sweep.add_group(threshold, negatives, positives, 0);
    }
    out.auroc = sweep.auroc();
    out.aupr = sweep.aupr();
    out.f1_max = sweep.f1_max();
    out.f1_threshold = sweep.f1_threshold();
    return out;
}

}  // namespace winclip::metrics
