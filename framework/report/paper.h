// The paper's published mean numbers (configs/paper/winclip-cvpr2023.yaml),
// which table.md prints under the mean row of a matching table so that our
// results read side by side with Jeong et al. 2023, Tables 1 and 4.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "report/cells.h"

namespace winclip::report {

// Percent, as the paper prints them.
struct PaperValue {
    double mean = 0;
    double std = 0;
};

// One published configuration: all classes of one dataset.
struct PaperEntry {
    std::string dataset;  // "mvtec" or "visa"
    std::string method;   // "winclip" (k = 0) or "winclip+"
    int k = 0;
    // kMetricNames order; empty where the paper gives no value.
    std::array<std::optional<PaperValue>, kMetricCount> metrics;
};

struct PaperNumbers {
    std::string label;       // the row's first cell
    std::string backbone;    // backbone id the numbers were published for
    std::string prompt_set;  // prompt set id the numbers were published for
    std::vector<PaperEntry> entries;

    // The entry for a table of our run, or nullptr. Only the default
    // switches match: the paper published nothing else.
    const PaperEntry* find(const std::string& dataset, const std::string& backbone,
                           const std::string& prompt_set, const std::string& method, int k,
                           const std::string& switches) const;
};

// Throws ConfigError naming `source` and the key on unknown keys, missing
// keys, bad values or duplicate entries.
PaperNumbers parse_paper_numbers(const std::string& yaml_text, const std::string& source);
// Throws IoError if the file cannot be read, ConfigError as above.
PaperNumbers load_paper_numbers(const std::string& path);
// The shipped file, read once per process.
const PaperNumbers& shipped_paper_numbers();
std::string shipped_paper_numbers_path();

}  // namespace winclip::report
