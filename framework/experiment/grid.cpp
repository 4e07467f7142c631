#include "experiment/grid.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/sha256.h"

namespace winclip::experiment {

std::string make_cell_id(const std::string& dataset, const std::string& class_name,
                         const std::string& backbone, const std::string& prompt_set,
                         const std::string& method, int k, int seed, const std::string& switches) {
    std::string id = fmt::format("{}/{}/{}/{}/{}/k{}/seed{}", dataset, class_name, backbone,
                                 prompt_set, method, k, seed);
    if (!switches.empty()) id += "/" + switches;
    return id;
}

std::string cell_file_stem(const std::string& id) {
    std::string s;
    for (char c : id) s += c == '/' ? std::string("__") : std::string(1, c);
    return s + "-" + sha256_hex(id).substr(0, 8);
}

std::vector<CellSpec> expand_grid(const Experiment& e,
                                  const std::vector<std::vector<std::string>>& classes) {
    WINCLIP_CHECK(classes.size() == e.datasets.size());
    std::vector<CellSpec> cells;
    for (size_t d = 0; d < e.datasets.size(); ++d) {
        for (const auto& class_name : classes[d]) {
            for (size_t b = 0; b < e.backbones.size(); ++b) {
                for (const auto& base : e.switches) {
                    // grid.prompt_sets, when given, replaces each switch set's own prompt set.
                    std::vector<std::string> sets = e.prompt_sets;
                    if (sets.empty()) sets.push_back(base.prompt_set);
                    for (const auto& set : sets) {
                        method::Settings settings = base;
                        settings.prompt_set = set;
                        for (int k : e.shots) {
                            const std::string method = k == 0 ? "winclip" : "winclip+";
                            // k = 0 draws no references, so every seed would repeat seed 0.
                            std::vector<int> seeds = k == 0 ? std::vector<int>{0} : e.seeds;
                            for (int seed : seeds) {
                                CellSpec c;
                                c.dataset = d;
                                c.class_name = class_name;
                                c.backbone = b;
                                c.prompt_set = prompt_set_id(set);
                                c.settings = settings;
                                c.method = method;
                                c.k = k;
                                c.seed = seed;
                                c.switches = settings.switch_suffix();
                                c.id = make_cell_id(e.datasets[d].name, class_name,
                                                    e.backbones[b].name, c.prompt_set, method, k,
                                                    seed, c.switches);
                                cells.push_back(std::move(c));
                            }
                        }
                    }
                }
            }
        }
    }
    std::sort(cells.begin(), cells.end(),
              [](const CellSpec& a, const CellSpec& b) { return a.id < b.id; });
    for (size_t i = 1; i < cells.size(); ++i) {
        if (cells[i].id == cells[i - 1].id) {
            throw ConfigError(fmt::format(
                "{}: two grid cells share the id {} (two switch sets differ only in their "
                "prompt set while grid.prompt_sets overrides it)",
                e.source, cells[i].id));
        }
    }
    return cells;
}

}  // namespace winclip::experiment
