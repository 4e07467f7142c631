#include "report/paper.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "core/error.h"

#ifndef WINCLIP_PAPER_NUMBERS
// Set in framework/report/CMakeLists.txt.
#error "WINCLIP_PAPER_NUMBERS must name configs/paper/winclip-cvpr2023.yaml"
#endif

namespace winclip::report {
namespace {

std::string line_of(const YAML::Node& node) { return std::to_string(node.Mark().line + 1); }

// Every key of `map` must be in `allowed`; `where` names the map in messages.
void reject_unknown_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                         const std::string& where, const std::string& source) {
    for (const auto& item : map) {
        const std::string key = item.first.IsScalar() ? item.first.Scalar() : "<not a string>";
        if (allowed.count(key)) continue;
        std::string known;
        for (const auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
        throw ConfigError(
            fmt::format("unknown key '{}' in {} of paper numbers {} (line {}); "
                        "known keys: {}",
                        key, where, source, line_of(item.first), known));
    }
}

const YAML::Node required(const YAML::Node& map, const std::string& key, const std::string& where,
                          const std::string& source) {
    const YAML::Node node = map[key];
    if (!node) {
        throw ConfigError(
            fmt::format("paper numbers {}: {} lacks the key '{}'", source, where, key));
    }
    return node;
}

std::string scalar(const YAML::Node& node, const std::string& key, const std::string& where,
                   const std::string& source) {
    const YAML::Node n = required(node, key, where, source);
    if (!n.IsScalar() || n.Scalar().empty()) {
        throw ConfigError(
            fmt::format("paper numbers {}: '{}' of {} must be a non-empty string "
                        "(line {})",
                        source, key, where, line_of(n)));
    }
    return n.Scalar();
}

// [mean, std] in percent.
PaperValue value_pair(const YAML::Node& n, const std::string& key, const std::string& where,
                      const std::string& source) {
    const std::string what =
        fmt::format("paper numbers {}: '{}' of {} (line {})", source, key, where, line_of(n));
    if (!n.IsSequence() || n.size() != 2) {
        throw ConfigError(what + " must be [mean, std] in percent");
    }
    PaperValue v;
    try {
        v.mean = n[0].as<double>();
        v.std = n[1].as<double>();
    } catch (const YAML::Exception&) {
        throw ConfigError(what + " must hold two numbers");
    }
    if (!std::isfinite(v.mean) || v.mean < 0 || v.mean > 100 || !std::isfinite(v.std) ||
        v.std < 0 || v.std > 100) {
        throw ConfigError(
            fmt::format("{} = [{}, {}] is not a percentage with a std >= 0", what, v.mean, v.std));
    }
    return v;
}

}  // namespace

const PaperEntry* PaperNumbers::find(const std::string& dataset_id, const std::string& backbone_id,
                                     const std::string& prompt_set_id, const std::string& method_id,
                                     int k_shots, const std::string& switches) const {
    // Tables know the dataset by its id (the name, which defaults to the type);
    // a dataset renamed in the experiment is not recognised and gets no row.
    if (!switches.empty() || backbone_id != backbone || prompt_set_id != prompt_set) {
        return nullptr;
    }
    for (const auto& e : entries) {
        if (e.dataset == dataset_id && e.method == method_id && e.k == k_shots) return &e;
    }
    return nullptr;
}

PaperNumbers parse_paper_numbers(const std::string& yaml_text, const std::string& source) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
        throw ConfigError(fmt::format("paper numbers {} is not valid YAML: {}", source, e.what()));
    }
    if (!root.IsMap()) {
        throw ConfigError(fmt::format("paper numbers {} must be a mapping", source));
    }
    reject_unknown_keys(root, {"label", "backbone", "prompt_set", "entries"}, "the top level",
                        source);
    PaperNumbers out;
    out.label = scalar(root, "label", "the top level", source);
    if (out.label.find('|') != std::string::npos || out.label.find('\n') != std::string::npos) {
        // The label becomes a Markdown table cell.
        throw ConfigError(
            fmt::format("paper numbers {}: 'label' must not hold '|' or a line "
                        "break",
                        source));
    }
    out.backbone = scalar(root, "backbone", "the top level", source);
    out.prompt_set = scalar(root, "prompt_set", "the top level", source);

    const YAML::Node entries = required(root, "entries", "the top level", source);
    if (!entries.IsSequence()) {
        throw ConfigError(fmt::format("paper numbers {}: 'entries' must be a list (line {})",
                                      source, line_of(entries)));
    }
    std::set<std::string> allowed = {"dataset", "method", "k"};
    for (const char* m : kMetricNames) allowed.insert(m);
    std::set<std::tuple<std::string, std::string, int>> seen;
    for (size_t i = 0; i < entries.size(); ++i) {
        const YAML::Node node = entries[i];
        const std::string where = fmt::format("entries[{}]", i);
        if (!node.IsMap()) {
            throw ConfigError(fmt::format("paper numbers {}: {} must be a mapping (line {})",
                                          source, where, line_of(node)));
        }
        reject_unknown_keys(node, allowed, where, source);
        PaperEntry e;
        e.dataset = scalar(node, "dataset", where, source);
        e.method = scalar(node, "method", where, source);
        const YAML::Node k = required(node, "k", where, source);
        try {
            e.k = k.as<int>();
        } catch (const YAML::Exception&) {
            throw ConfigError(
                fmt::format("paper numbers {}: 'k' of {} must be an integer "
                            "(line {})",
                            source, where, line_of(k)));
        }
        // The paper's naming: WinCLIP is the zero-shot method, WinCLIP+ the few-shot one.
        const bool consistent =
            (e.method == "winclip" && e.k == 0) || (e.method == "winclip+" && e.k > 0);
        if (!consistent) {
            throw ConfigError(
                fmt::format("paper numbers {}: {} has method '{}' with k = {}; "
                            "expected winclip with k = 0 or winclip+ with k > 0",
                            source, where, e.method, e.k));
        }
        if (!seen.insert({e.dataset, e.method, e.k}).second) {
            throw ConfigError(fmt::format("paper numbers {}: {} repeats {} / {} / k={}", source,
                                          where, e.dataset, e.method, e.k));
        }
        for (size_t m = 0; m < kMetricCount; ++m) {
            const YAML::Node v = node[kMetricNames[m]];
            if (v) e.metrics[m] = value_pair(v, kMetricNames[m], where, source);
        }
        out.entries.push_back(std::move(e));
    }
    return out;
}

PaperNumbers load_paper_numbers(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError(fmt::format("cannot open paper numbers {}", path));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw IoError(fmt::format("cannot read paper numbers {}", path));
    return parse_paper_numbers(text.str(), path);
}

std::string shipped_paper_numbers_path() { return WINCLIP_PAPER_NUMBERS; }

const PaperNumbers& shipped_paper_numbers() {
    static const PaperNumbers numbers = load_paper_numbers(shipped_paper_numbers_path());
    return numbers;
}

}  // namespace winclip::report
