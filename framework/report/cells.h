// One finished (or failed) grid cell as the reducer sees it, and the
// cells.csv writer. Reducing is pure: records in, text out. Nothing here
// depends on how many ranks ran or in which order cells finished.
#pragma once

#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace winclip::report {

// The metric columns of cells.csv, in order (fractions, not percent).
inline constexpr std::array<const char*, 7> kMetricNames = {
    "image_auroc", "image_aupr",   "image_f1_max", "pixel_auroc",
    "pixel_aupr",  "pixel_au_pro", "pixel_f1_max"};
constexpr size_t kMetricCount = kMetricNames.size();

struct CellRecord {
    std::string id;          // dataset/class/backbone/prompt_set/method/k<K>/seed<S>[/switches]
    std::string dataset;     // e.g. "mvtec"
    std::string class_name;  // e.g. "bottle"
    std::string backbone;    // the backbone's short name
    std::string prompt_set;  // e.g. "paper"
    std::string method;      // "winclip" (k = 0) or "winclip+"
    int k = 0;               // reference shots
    int seed = 0;            // 0 for k = 0
    std::string switches;    // switch suffix, empty for the defaults
    // kMetricNames order; NaN where undefined (e.g. no anomalous pixel).
    std::array<double, kMetricCount> metrics;
    std::string status = "ok";  // "ok" or "failed"
    std::string error;          // one line, empty when ok

    CellRecord() { metrics.fill(std::numeric_limits<double>::quiet_NaN()); }
    bool ok() const { return status == "ok"; }

    // Lossless: doubles survive the round trip bit for bit; NaN is stored as null.
    nlohmann::json to_json() const;
    // Throws IoError naming `source` on a malformed record.
    static CellRecord from_json(const nlohmann::json& j, const std::string& source);
};

// 17 significant digits (enough to round-trip a double), "nan" when undefined.
std::string format_metric(double value);

// The cells.csv text: header, then one row per record sorted by id. Fields
// holding commas, quotes or line breaks are quoted (RFC 4180).
std::string cells_csv(std::vector<CellRecord> records);

}  // namespace winclip::report
