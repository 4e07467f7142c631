#include "metrics/sweep.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace winclip::metrics::detail {

Uint128 region_weight(uint64_t region_size) {
    WINCLIP_CHECK(region_size > 0);
    const Uint128 one = Uint128{1} << kOverlapFractionBits;
    return (one + region_size / 2) / region_size;
}

ThresholdSweep::ThresholdSweep(const SweepConfig& config) : config_(config) {
    WINCLIP_CHECK(!config_.with_pro || (config_.pro_limit > 0.0 && config_.pro_limit <= 1.0));
    if (config_.with_pro && config_.keep_curve) {
        curve_fpr_.push_back(0.0);
        curve_pro_.push_back(0.0);
    }
}

void ThresholdSweep::add_group(double threshold, uint64_t negatives, uint64_t positives,
                               Uint128 overlap) {
    // ROC: the group moves the curve from (fp, tp) to (fp + n, tp + p); the
    // trapezoid under that segment is n * (2 tp + p) / 2.
    auroc_area2_ += Uint128{negatives} * (Uint128{2} * tp_ + positives);
    tp_ += positives;
    fp_ += negatives;
    overlap_ += overlap;

    // Average precision: recall rises by p / P at precision tp / (tp + fp).
    if (positives > 0) {
        ap_sum_ += static_cast<double>(positives) *
                   (static_cast<double>(tp_) / static_cast<double>(tp_ + fp_));
    }

    // F1 = 2 TP / (TP + FP + P). Compared as exact fractions so that equal F1
    // at two thresholds is a tie, and the first (highest) threshold is kept.
    const uint64_t denominator = tp_ + fp_ + config_.positives;
    if (!have_best_ || Uint128{tp_} * best_denominator_ > Uint128{best_tp_} * denominator) {
        best_tp_ = tp_;
        best_denominator_ = denominator;
        best_threshold_ = threshold;
        have_best_ = true;
    }

    if (config_.with_pro && !pro_done_) {
        const double fpr = static_cast<double>(fp_) / static_cast<double>(config_.negatives);
        const double overlap_sum = std::ldexp(static_cast<double>(overlap_), -kOverlapFractionBits);
        const double pro = overlap_sum / static_cast<double>(config_.regions);
        add_pro_point(fpr, pro);
    }
}

void ThresholdSweep::add_pro_point(double fpr, double pro) {
    // Trapezoids over the curve (MVTec AD's PRO), truncated at FPR = L with the
    // end point linearly interpolated between its neighbours.
    const double limit = config_.pro_limit;
    if (fpr >= limit) {
        double end_pro = pro;
        if (fpr > limit) {
            end_pro = last_pro_ + (pro - last_pro_) * (limit - last_fpr_) / (fpr - last_fpr_);
        }
        pro_area_ += (limit - last_fpr_) * (last_pro_ + end_pro) / 2.0;
        if (config_.keep_curve) {
            curve_fpr_.push_back(limit);
            curve_pro_.push_back(end_pro);
        }
        last_fpr_ = limit;
        last_pro_ = end_pro;
        pro_done_ = true;
        return;
    }
    pro_area_ += (fpr - last_fpr_) * (last_pro_ + pro) / 2.0;
    last_fpr_ = fpr;
    last_pro_ = pro;
    if (config_.keep_curve) {
        curve_fpr_.push_back(fpr);
        curve_pro_.push_back(pro);
    }
}

double ThresholdSweep::auroc() const {
    const double pn = static_cast<double>(config_.positives) * static_cast<double>(config_.negatives);
    return static_cast<double>(auroc_area2_) / 2.0 / pn;
}

double ThresholdSweep::aupr() const { return ap_sum_ / static_cast<double>(config_.positives); }

double ThresholdSweep::f1_max() const {
    return 2.0 * static_cast<double>(best_tp_) / static_cast<double>(best_denominator_);
}

double ThresholdSweep::au_pro() const {
    WINCLIP_CHECK(config_.with_pro && pro_done_);
    return pro_area_ / config_.pro_limit;
}

}  // namespace winclip::metrics::detail
