// Grid expansion: datasets x classes x backbones x prompt sets x methods x
// shots x seeds x switch sets -> cells with stable ids. A cell id joins, in
// this order, dataset, class, backbone, prompt set, method, k<K>, seed<S> and,
// when a switch differs from the paper preset, the switch suffix:
//   mvtec/bottle/vit-b-16-plus-240/paper/winclip+/k4/seed1
//   mvtec/bottle/vit-b-16-plus-240/paper/winclip/k0/seed0/t0.07+raw
// k = 0 cells are deterministic and exist once, as seed 0.
#pragma once

#include <string>
#include <vector>

#include "experiment/config.h"

namespace winclip::experiment {

struct CellSpec {
    std::string id;
    size_t dataset = 0;  // index into Experiment::datasets
    std::string class_name;
    size_t backbone = 0;        // index into Experiment::backbones
    std::string prompt_set;     // its id (a shipped name or a file stem)
    method::Settings settings;  // the switch set, with settings.prompt_set = the set to load
    std::string method;         // "winclip" or "winclip+"
    int k = 0;
    int seed = 0;
    std::string switches;  // settings.switch_suffix()
};

std::string make_cell_id(const std::string& dataset, const std::string& class_name,
                         const std::string& backbone, const std::string& prompt_set,
                         const std::string& method, int k, int seed, const std::string& switches);

// A file name for a cell id: "/" becomes "__", plus 8 hex digits of the id's
// SHA-256 so that two ids can never map to one name.
std::string cell_file_stem(const std::string& id);

// `classes[d]` are the classes of dataset d (already resolved from "all").
// Cells come out sorted by id. Throws ConfigError if two cells get the same id
// (two switch sets that differ only in ways the id does not show).
std::vector<CellSpec> expand_grid(const Experiment& e,
                                  const std::vector<std::vector<std::string>>& classes);

}  // namespace winclip::experiment
