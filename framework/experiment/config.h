// The experiment YAML (schema in docs/experiments.md) read into validated
// structs. The reader only fills and checks these; unknown keys, wrong types
// and out-of-range values are ConfigErrors naming the key and the file, e.g.
//   shots must be >= 0, got -1 (experiments/x.yaml: grid.shots[2])
// Relative paths in the file are relative to the file's own folder.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "winclip/pipeline.h"

namespace winclip::experiment {

struct DatasetSpec {
    std::string name;       // first field of cell ids; defaults to the type
    std::string type;       // "mvtec" or "visa"
    std::string root;       // dataset folder (resolved)
    std::string split_csv;  // VisA only: split CSV (resolved); empty = the reader's default
    std::vector<std::string> classes;  // empty = every class the dataset has
};

struct Experiment {
    std::string name;    // defaults to the file name without .yaml
    std::string source;  // the YAML path as given (for messages)
    std::string folder;  // its folder; relative paths resolve against it

    std::vector<DatasetSpec> datasets;            // at least one
    std::vector<method::BackboneSpec> backbones;  // at least one; names unique
    // Prompt sets crossed with every switch set: a shipped name or a path
    // (resolved). Empty = each switch set's own (its preset's) prompt set.
    std::vector<std::string> prompt_sets;
    std::vector<std::string> methods = {"winclip", "winclip+"};  // winclip: k = 0, winclip+: k > 0
    std::vector<int> shots = {0};                                // reference images per cell, >= 0
    std::vector<int> seeds = {0};  // reference draws, >= 0; k = 0 cells run once as seed 0
    std::vector<method::Settings> switches = {method::preset("paper")};  // ablation settings
    std::string cache_folder;    // embedding cache (resolved); required
    bool cache_float16 = false;  // store embeddings as IEEE half (halves the cache)
    int batch_size = 8;          // images per forward pass and per cache shard, >= 1
    // Device of every backbone's forward passes (method::BackboneSpec::device):
    // auto, cpu, cuda or cuda:N; checked when the run starts.
    std::string device = "auto";

    // The fully resolved experiment, for run.json.
    nlohmann::json to_json() const;
};

// Reads and validates an experiment file. Throws ConfigError (bad content) or
// IoError (unreadable file).
Experiment load_experiment(const std::string& path);

// Same from text; `source` names it in messages and `folder` anchors relative paths.
Experiment parse_experiment(const std::string& yaml_text, const std::string& source,
                            const std::string& folder);

// The short name a prompt set has in cell ids: a shipped name as is, a path
// by its file name without extension.
std::string prompt_set_id(const std::string& name_or_path);

}  // namespace winclip::experiment
