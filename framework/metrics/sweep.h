// The one descending sweep over distinct thresholds that every metric of this
// module is computed from. Callers feed groups of tied scores from the highest
// score to the lowest; each group carries integer counts only, so the result
// depends on the multiset of (score, label, region) entries and not on the
// order in which images were added or states were merged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace winclip::metrics::detail {

using Uint128 = unsigned __int128;

// Per-region overlap is accumulated in fixed point: a pixel of a region of
// size s adds round(2^80 / s). Integer sums are associative, which makes PRO
// bit-identical under any merge order; the rounding error is below 2^-60 of
// each region's weight, far beneath double precision of the final value.
constexpr int kOverlapFractionBits = 80;
Uint128 region_weight(uint64_t region_size);

struct SweepConfig {
    uint64_t negatives = 0;  // normal samples / pixels in total
    uint64_t positives = 0;  // anomalous samples / pixels in total
    bool with_pro = false;   // accumulate the per-region-overlap curve
    uint64_t regions = 0;    // number of anomalous regions (with_pro)
    double pro_limit = 0.3;  // FPR limit L of AU-PRO, in (0, 1]
    bool keep_curve = false; // record the PRO curve points up to L
};

class ThresholdSweep {
public:
    explicit ThresholdSweep(const SweepConfig& config);

    // One group of tied scores at `threshold`, strictly below every earlier
    // group: `negatives` normal and `positives` anomalous entries, and the sum
    // of their region weights (anomalous pixels only, with_pro).
    void add_group(double threshold, uint64_t negatives, uint64_t positives, Uint128 overlap);

    // Valid after every entry was fed (the counts must add up to the totals).
    double auroc() const;
    double aupr() const;
    double f1_max() const;
    double f1_threshold() const { return best_threshold_; }
    double au_pro() const;
    // The curve from (0, 0) to FPR = L (ending at the interpolated point),
    // unscaled; empty unless keep_curve.
    const std::vector<double>& curve_fpr() const { return curve_fpr_; }
    const std::vector<double>& curve_pro() const { return curve_pro_; }

private:
    void add_pro_point(double fpr, double pro);

    SweepConfig config_;
    uint64_t tp_ = 0;
    uint64_t fp_ = 0;
    Uint128 overlap_ = 0;
    // Twice the area under the ROC step curve, in units of 1 / (P * N); ties
    // form a diagonal segment, which counts them one half (Mann-Whitney U).
    Uint128 auroc_area2_ = 0;
    // Sum over groups of (new positives) * precision, divided by P at the end
    // (average precision as scikit-learn defines it).
    double ap_sum_ = 0.0;
    // Best F1 = 2 TP / (TP + FP + P), kept as the exact fraction.
    uint64_t best_tp_ = 0;
    uint64_t best_denominator_ = 1;
    double best_threshold_ = 0.0;
    bool have_best_ = false;
    // PRO integration state.
    double last_fpr_ = 0.0;
    double last_pro_ = 0.0;
    double pro_area_ = 0.0;
    bool pro_done_ = false;
    std::vector<double> curve_fpr_;
    std::vector<double> curve_pro_;
};

}  // namespace winclip::metrics::detail
