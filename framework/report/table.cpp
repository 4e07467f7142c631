#include "report/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

namespace winclip::report {

MeanStd mean_std(const std::vector<double>& values) {
    const double nan = std::nan("");
    if (values.empty()) return {nan, nan};
    double sum = 0;
    for (double v : values) sum += v;
    const double mean = sum / static_cast<double>(values.size());
    double squares = 0;
    for (double v : values) squares += (v - mean) * (v - mean);
    // Population standard deviation: the seeds are the whole set of draws reported.
    return {mean, std::sqrt(squares / static_cast<double>(values.size()))};
}

namespace {

using ConfigKey = std::tuple<std::string, std::string, std::string, std::string, int, std::string>;

ConfigKey key_of(const CellRecord& r) {
    // Sorted by dataset, backbone, prompt set, switches, then k numerically
    // (k10 after k2) and method.
    return {r.dataset, r.backbone, r.prompt_set, r.switches, r.k, r.method};
}

}  // namespace

std::vector<ConfigTable> build_tables(const std::vector<CellRecord>& records) {
    // config -> class -> seed -> record
    std::map<ConfigKey, std::map<std::string, std::map<int, const CellRecord*>>> groups;
    for (const auto& r : records) groups[key_of(r)][r.class_name][r.seed] = &r;

    std::vector<ConfigTable> tables;
    for (const auto& [key, classes] : groups) {
        ConfigTable t;
        std::tie(t.dataset, t.backbone, t.prompt_set, t.switches, t.k, t.method) = key;

        std::map<int, std::vector<const CellRecord*>> by_seed;  // for the mean row
        for (const auto& [class_name, seeds] : classes) {
            ClassRow row;
            row.class_name = class_name;
            std::array<std::vector<double>, kMetricCount> values;
            for (const auto& [seed, r] : seeds) {
                by_seed[seed].push_back(r);
                if (!r->ok()) {
                    ++row.seeds_failed;
                    continue;
                }
                ++row.seeds_ok;
                for (size_t m = 0; m < kMetricCount; ++m) values[m].push_back(r->metrics[m]);
            }
            for (size_t m = 0; m < kMetricCount; ++m) row.metrics[m] = mean_std(values[m]);
            t.rows.push_back(row);
        }

        ClassRow mean;
        mean.class_name = "mean";
        std::array<std::vector<double>, kMetricCount> seed_means;
        for (const auto& [seed, rs] : by_seed) {
            const bool complete =
                rs.size() == classes.size() &&
                std::all_of(rs.begin(), rs.end(), [](const CellRecord* r) { return r->ok(); });
            if (!complete) {
                ++mean.seeds_failed;
                continue;
            }
            ++mean.seeds_ok;
            for (size_t m = 0; m < kMetricCount; ++m) {
                double sum = 0;
                for (const auto* r : rs) sum += r->metrics[m];
                seed_means[m].push_back(sum / static_cast<double>(rs.size()));
            }
        }
        for (size_t m = 0; m < kMetricCount; ++m) mean.metrics[m] = mean_std(seed_means[m]);
        t.rows.push_back(mean);
        tables.push_back(std::move(t));
    }
    return tables;
}

namespace {

// Table columns: the paper's image- and pixel-level metrics (pixel AUPR stays
// in cells.csv only).
constexpr std::array<size_t, 6> kTableColumns = {0, 1, 2, 3, 5, 6};
constexpr std::array<const char*, 6> kTableHeaders = {
    "image AUROC", "image AUPR", "image F1-max", "pixel AUROC", "pixel AU-PRO", "pixel F1-max"};

std::string cell_text(const MeanStd& v) {
    if (std::isnan(v.mean)) return "n/a";
    return fmt::format("{:.1f} ± {:.1f}", 100.0 * v.mean, 100.0 * v.std);
}

std::string paper_row(const std::string& label, const PaperEntry& entry) {
    std::string row = "| " + label + " |";
    for (size_t c : kTableColumns) {
        const auto& v = entry.metrics[c];
        row += v ? fmt::format(" {:.1f} ± {:.1f} |", v->mean, v->std) : std::string(" - |");
    }
    return row + " - |\n";
}

}  // namespace

std::string tables_markdown(const std::vector<CellRecord>& records,
                            const std::set<std::string>& random_weight_backbones) {
    return tables_markdown(records, random_weight_backbones, &shipped_paper_numbers());
}

std::string tables_markdown(const std::vector<CellRecord>& records,
                            const std::set<std::string>& random_weight_backbones,
                            const PaperNumbers* paper) {
    const std::vector<ConfigTable> tables = build_tables(records);
    std::vector<const PaperEntry*> published;
    bool any_published = false;
    for (const auto& t : tables) {
        published.push_back(
            paper ? paper->find(t.dataset, t.backbone, t.prompt_set, t.method, t.k, t.switches)
                  : nullptr);
        any_published = any_published || published.back() != nullptr;
    }

    std::string out = "# Results\n\n";
    if (!random_weight_backbones.empty()) {
        std::string names;
        for (const auto& n : random_weight_backbones) names += (names.empty() ? "" : ", ") + n;
        out += "**random weights — scores are meaningless** (backbone " + names + ")\n\n";
    }
    out +=
        "Percent; mean ± population std over seeds (k = 0 runs once, std 0). The mean row "
        "averages the classes within each seed first.\n";
    if (any_published) {
        // The paper averages every class of the dataset; a run on a subset of
        // classes is not comparable with it, which the row's label says.
        out += fmt::format(
            "Rows \"{}\" are the paper's published means over every class of the dataset, "
            "whichever classes ran here.\n",
            paper->label);
    }
    for (size_t i = 0; i < tables.size(); ++i) {
        const ConfigTable& t = tables[i];
        out +=
            fmt::format("\n## {} / {} / {} / {} / k={}{}\n\n", t.dataset, t.backbone, t.prompt_set,
                        t.method, t.k, t.switches.empty() ? "" : " / " + t.switches);
        out += "| class |";
        for (const char* h : kTableHeaders) out += std::string(" ") + h + " |";
        out += " seeds |\n|---|";
        for (size_t i = 0; i < kTableHeaders.size(); ++i) out += "---|";
        out += "---|\n";
        for (const auto& row : t.rows) {
            out +=
                "| " + (row.class_name == "mean" ? std::string("**mean**") : row.class_name) + " |";
            for (size_t c : kTableColumns) out += " " + cell_text(row.metrics[c]) + " |";
            out += " " + std::to_string(row.seeds_ok);
            if (row.seeds_failed > 0) out += fmt::format(" ({} failed)", row.seeds_failed);
            out += " |\n";
        }
        if (published[i]) out += paper_row(paper->label, *published[i]);
    }
    return out;
}

}  // namespace winclip::report
