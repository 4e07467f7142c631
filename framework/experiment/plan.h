// Planning a run: which pipelines (variants) the grid needs, which image and
// text embeddings (units) they must compute, deduplicated over the whole grid,
// which of those the cache already holds, and which cells a previous run
// already finished. Rank 0 builds the plan and broadcasts it as JSON, so every
// rank works from the same lists and the same reference draws.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cache/embedding_cache.h"
#include "experiment/config.h"
#include "experiment/grid.h"

namespace winclip::experiment {

// One pipeline configuration: a backbone with one switch set and prompt set.
struct Variant {
    size_t backbone = 0;
    method::Settings settings;
    std::string embedding_key;  // Pipeline::image_embedding_key()
    double image_gflops = 0;    // one image's forward pass (Pipeline::image_gflops())
    bool random_weights = false;  // Pipeline::random_weights(): the YAML flag or the demo weights
};

struct ImageUnit {
    std::string key;     // cache::image_unit_key(embedding key, file hash)
    std::string path;    // the image file
    size_t variant = 0;  // a variant that can compute it
    bool cached = false;
};

struct TextUnit {
    std::string key;  // Pipeline::text_key(class)
    std::string class_name;
    size_t variant = 0;
    bool cached = false;
};

struct TestImage {
    size_t unit = 0;  // index into Plan::image_units
    std::string path;
    std::string mask_path;  // empty for normal images
    int label = 0;
    std::string defect;
};

struct PlannedCell {
    CellSpec spec;
    size_t variant = 0;
    std::vector<TestImage> tests;
    std::vector<size_t> references;            // indices into Plan::image_units
    std::vector<std::string> reference_paths;  // in draw order
    size_t text = 0;                           // index into Plan::text_units
    // SHA-256 over everything the cell's result depends on (settings, unit
    // keys, mask bytes): a stored record is reused only when this matches.
    std::string inputs_key;
    bool done = false;  // a valid ok record with this inputs_key exists
    // Non-empty when planning already found the cell's data unusable (a class
    // without test or training images, a defect image without its mask, more
    // shots than training images): the cell is recorded as failed with this
    // text and the rest of the grid runs on.
    std::string error;
};

struct Plan {
    std::vector<Variant> variants;
    std::vector<ImageUnit> image_units;
    std::vector<TextUnit> text_units;
    std::vector<PlannedCell> cells;                // sorted by id
    std::vector<std::string> corrupt_cache_files;  // found and removed while planning

    size_t cached_images() const;
    size_t cached_texts() const;
    size_t done_cells() const;

    nlohmann::json to_json() const;
    static Plan from_json(const nlohmann::json& j);
};

// Where finished cells are kept: <out>/cells/<cell_file_stem(id)>.json.
std::string cell_record_path(const std::string& out_dir, const std::string& cell_id);

// Builds the plan: opens the datasets, expands the grid, draws references,
// loads each variant's pipeline to get its keys, hashes image files, verifies
// the cache and checks `out_dir` for finished cells (`out_dir` empty: none
// are). With `repair`, corrupt cache files are deleted; without it (`winclip
// plan`) they are only reported. Throws ConfigError on a bad grid (an unknown
// class, prompt set or backbone); a problem with one class's files fails only
// that class's cells (PlannedCell::error).
Plan build_plan(const Experiment& e, cache::EmbeddingCache& cache, const std::string& out_dir,
                bool repair = true);

// method::Settings from Settings::to_json().
method::Settings settings_from_json(const nlohmann::json& j);

}  // namespace winclip::experiment
