// Per-class tables with mean +- std over seeds (population std), as the paper
// reports its few-shot results (Tables 1-2: mean and std over 5 reference draws).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "report/cells.h"
#include "report/paper.h"

namespace winclip::report {

// Mean and population standard deviation; NaN if any value is NaN or the
// list is empty.
struct MeanStd {
    double mean = 0;
    double std = 0;
};
MeanStd mean_std(const std::vector<double>& values);

// One table of a configuration (dataset, backbone, prompt set, method, k, switches).
struct ClassRow {
    std::string class_name;                     // or "mean"
    std::array<MeanStd, kMetricCount> metrics;  // fractions
    int seeds_ok = 0;                           // seeds that entered the statistics
    int seeds_failed = 0;                       // seeds whose cell failed
};
struct ConfigTable {
    std::string dataset, backbone, prompt_set, method, switches;
    int k = 0;
    std::vector<ClassRow> rows;  // classes sorted by name, then the mean row
};

// Groups records into tables. Per class: mean and std over the seeds whose
// cell is ok. The mean row averages the classes within each seed (only seeds
// where every class is ok), then takes mean and std of those averages.
std::vector<ConfigTable> build_tables(const std::vector<CellRecord>& records);

// Markdown for all tables, in percent with one decimal ("91.2 ± 0.3"). When
// `random_weight_backbones` is not empty, a banner line says the scores are
// meaningless.
// Under the mean row of each table that `paper` has an entry for (same dataset
// id, backbone id, prompt set id, method and k, default switches), a row with
// the paper's published values; "-" where the paper gives none. The two-argument
// form uses shipped_paper_numbers(); `paper` may be null (no such rows).
std::string tables_markdown(const std::vector<CellRecord>& records,
                            const std::set<std::string>& random_weight_backbones);
std::string tables_markdown(const std::vector<CellRecord>& records,
                            const std::set<std::string>& random_weight_backbones,
                            const PaperNumbers* paper);

}  // namespace winclip::report
