// `winclip metrics`: scores stored labels/scores and masks/maps from any tool
// with the framework's exact metric definitions (docs/metrics.md).
#include <memory>
#include <string>

#include "apps/winclip/command.h"
#include "core/error.h"
#include "core/log.h"
#include "metrics/metrics_file.h"

namespace winclip::cli {
namespace {

struct MetricsOptions {
    std::string in;                                // HDF5 file to read
    std::string group = "/";                       // group holding the datasets
    double pro_limit = metrics::kDefaultProLimit;  // AU-PRO FPR limit, (0, 1]
    bool curve = false;                            // write the PRO curve too
    std::string out;                               // JSON file to write
};

int run_metrics(const MetricsOptions& opts) {
    if (!(opts.pro_limit > 0.0 && opts.pro_limit <= 1.0)) {
        throw ConfigError("--pro-limit must be in (0, 1], got " + std::to_string(opts.pro_limit));
    }
    metrics::MetricsFileOptions options;
    options.group = opts.group;
    options.pro_limit = opts.pro_limit;
    options.curve = opts.curve;
    const metrics::MetricsFileResult result = metrics::evaluate_metrics_file(opts.in, options);
    metrics::write_text_file(opts.out, metrics::metrics_json(result, opts.curve));

    if (result.has_image) {
        const auto& m = result.image;
        log::info("metrics", "{} images ({} anomalous): AUROC {:.4f}, AUPR {:.4f}, F1-max {:.4f}{}",
                  m.normal_count + m.anomalous_count, m.anomalous_count, m.auroc, m.aupr,
                  m.f1_max, m.reason.empty() ? "" : " (" + m.reason + ")");
    }
    if (result.has_pixel) {
        const auto& m = result.pixel;
        log::info("metrics",
                  "{} maps, {} regions: pixel AUROC {:.4f}, AUPR {:.4f}, F1-max {:.4f}, "
                  "AU-PRO@{} {:.4f}{}",
                  m.images, m.regions, m.pixel_auroc, m.pixel_aupr, m.pixel_f1_max,
                  m.au_pro_limit, m.au_pro, m.reason.empty() ? "" : " (" + m.reason + ")");
    }
    log::info("metrics", "wrote {}", opts.out);
    return 0;
}

const Registration kMetrics{
    "metrics", "Evaluate stored scores and maps (labels/scores, masks/maps) into JSON",
    [](CLI::App& app) {
        auto opts = std::make_shared<MetricsOptions>();
        app.add_option("--in", opts->in, "HDF5 file with labels/scores and/or masks/maps")
            ->required();
        app.add_option("--group", opts->group, "group holding the datasets");
        app.add_option("--pro-limit", opts->pro_limit, "FPR limit L of AU-PRO, in (0, 1]");
        app.add_flag("--curve", opts->curve, "also write the PRO curve (fpr, pro) up to L");
        app.add_option("--out", opts->out, "JSON file to write")->required();
        return [opts]() -> int { return run_metrics(*opts); };
    }};

}  // namespace
}  // namespace winclip::cli
