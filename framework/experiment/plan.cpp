#include "experiment/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/sha256.h"
#include "data/dataset.h"
#include "data/sampling.h"
#include "io/file.h"
#include "report/cells.h"

namespace winclip::experiment {
namespace fs = std::filesystem;

method::Settings settings_from_json(const nlohmann::json& j) {
    method::Settings s;
    s.prompt_set = j.at("prompt_set").get<std::string>();
    s.temperature = j.at("temperature").get<double>();
    s.normalize_prompts = j.at("prompt_average").get<std::string>() == "normalized";
    s.image_scale_in_fusion = j.at("image_scale_in_fusion").get<bool>();
    s.harmonic_eps = j.at("harmonic_eps").get<double>();
    s.window_sizes = j.at("window_sizes").get<std::vector<int>>();
    s.window_stride = j.at("window_stride").get<int>();
    return s;
}

size_t Plan::cached_images() const {
    return static_cast<size_t>(std::count_if(image_units.begin(), image_units.end(),
                                             [](const ImageUnit& u) { return u.cached; }));
}
size_t Plan::cached_texts() const {
    return static_cast<size_t>(std::count_if(text_units.begin(), text_units.end(),
                                             [](const TextUnit& u) { return u.cached; }));
}
size_t Plan::done_cells() const {
    return static_cast<size_t>(
        std::count_if(cells.begin(), cells.end(), [](const PlannedCell& c) { return c.done; }));
}

std::string cell_record_path(const std::string& out_dir, const std::string& cell_id) {
    return (fs::path(out_dir) / "cells" / (cell_file_stem(cell_id) + ".json")).string();
}

// ---- JSON form (rank 0 -> every rank) ----------------------------------------

nlohmann::json Plan::to_json() const {
    nlohmann::json j;
    for (const auto& v : variants) {
        j["variants"].push_back({{"backbone", v.backbone},
                                 {"settings", v.settings.to_json()},
                                 {"embedding_key", v.embedding_key},
                                 {"image_gflops", v.image_gflops},
                                 {"random_weights", v.random_weights}});
    }
    j["image_units"] = nlohmann::json::array();
    for (const auto& u : image_units) {
        j["image_units"].push_back({u.key, u.path, u.variant, u.cached});
    }
    j["text_units"] = nlohmann::json::array();
    for (const auto& u : text_units) {
        j["text_units"].push_back({u.key, u.class_name, u.variant, u.cached});
    }
    j["cells"] = nlohmann::json::array();
    for (const auto& c : cells) {
        nlohmann::json cj;
        cj["id"] = c.spec.id;
        cj["dataset"] = c.spec.dataset;
        cj["class"] = c.spec.class_name;
        cj["backbone"] = c.spec.backbone;
        cj["prompt_set"] = c.spec.prompt_set;
        cj["settings"] = c.spec.settings.to_json();
        cj["method"] = c.spec.method;
        cj["k"] = c.spec.k;
        cj["seed"] = c.spec.seed;
        cj["switches"] = c.spec.switches;
        cj["variant"] = c.variant;
        cj["tests"] = nlohmann::json::array();
        for (const auto& t : c.tests) {
            cj["tests"].push_back({t.unit, t.path, t.mask_path, t.label, t.defect});
        }
        cj["references"] = c.references;
        cj["reference_paths"] = c.reference_paths;
        cj["text"] = c.text;
        cj["inputs_key"] = c.inputs_key;
        cj["done"] = c.done;
        cj["error"] = c.error;
        j["cells"].push_back(cj);
    }
    j["corrupt_cache_files"] = corrupt_cache_files;
    return j;
}

Plan Plan::from_json(const nlohmann::json& j) {
    Plan p;
    for (const auto& v : j.at("variants")) {
        p.variants.push_back({v.at("backbone").get<size_t>(), settings_from_json(v.at("settings")),
                              v.at("embedding_key").get<std::string>(),
                              v.at("image_gflops").get<double>(),
                              v.at("random_weights").get<bool>()});
    }
    for (const auto& u : j.at("image_units")) {
        p.image_units.push_back({u[0].get<std::string>(), u[1].get<std::string>(),
                                 u[2].get<size_t>(), u[3].get<bool>()});
    }
    for (const auto& u : j.at("text_units")) {
        p.text_units.push_back({u[0].get<std::string>(), u[1].get<std::string>(),
                                u[2].get<size_t>(), u[3].get<bool>()});
    }
    for (const auto& cj : j.at("cells")) {
        PlannedCell c;
        c.spec.id = cj.at("id").get<std::string>();
        c.spec.dataset = cj.at("dataset").get<size_t>();
        c.spec.class_name = cj.at("class").get<std::string>();
        c.spec.backbone = cj.at("backbone").get<size_t>();
        c.spec.prompt_set = cj.at("prompt_set").get<std::string>();
        c.spec.settings = settings_from_json(cj.at("settings"));
        c.spec.method = cj.at("method").get<std::string>();
        c.spec.k = cj.at("k").get<int>();
        c.spec.seed = cj.at("seed").get<int>();
        c.spec.switches = cj.at("switches").get<std::string>();
        c.variant = cj.at("variant").get<size_t>();
        for (const auto& t : cj.at("tests")) {
            c.tests.push_back({t[0].get<size_t>(), t[1].get<std::string>(), t[2].get<std::string>(),
                               t[3].get<int>(), t[4].get<std::string>()});
        }
        c.references = cj.at("references").get<std::vector<size_t>>();
        c.reference_paths = cj.at("reference_paths").get<std::vector<std::string>>();
        c.text = cj.at("text").get<size_t>();
        c.inputs_key = cj.at("inputs_key").get<std::string>();
        c.done = cj.at("done").get<bool>();
        c.error = cj.at("error").get<std::string>();
        p.cells.push_back(std::move(c));
    }
    p.corrupt_cache_files = j.at("corrupt_cache_files").get<std::vector<std::string>>();
    return p;
}

// ---- building ----------------------------------------------------------------

namespace {

struct ClassData {
    std::vector<data::Sample> tests;
    std::vector<std::string> pool;  // train/good
    std::string error;              // why the class's files are unusable; empty when fine
};

// Hashes each file once, however many cells use it.
class FileHashes {
  public:
    // A file that cannot be read gets a key of its own; the cells that need it
    // then fail when it is embedded or loaded, with the reader's message,
    // instead of the whole plan failing here.
    const std::string& get(const std::string& path) {
        auto it = hashes_.find(path);
        if (it == hashes_.end()) {
            std::string hash;
            try {
                hash = io::file_sha256(path);
            } catch (const IoError& err) {
                log::warn("experiment", "{}; the cells that use it will fail", err.what());
                hash = "unreadable:" + path;
            }
            it = hashes_.emplace(path, std::move(hash)).first;
        }
        return it->second;
    }

  private:
    std::map<std::string, std::string> hashes_;
};

bool stored_record_matches(const std::string& path, const std::string& inputs_key) {
    if (!fs::is_regular_file(path)) return false;
    try {
        const auto j = nlohmann::json::parse(io::read_file_bytes(path));
        const auto record = report::CellRecord::from_json(j.at("record"), path);
        // Failed cells are retried: their cause may have been fixed.
        return record.ok() && j.at("inputs_key").get<std::string>() == inputs_key;
    } catch (const std::exception& e) {
        log::warn("experiment", "ignoring unreadable cell record {} ({}); the cell runs again",
                  path, e.what());
        return false;
    }
}

}  // namespace

Plan build_plan(const Experiment& e, cache::EmbeddingCache& cache, const std::string& out_dir,
                bool repair) {
    Plan plan;

    // --- Datasets: classes, test samples and reference pools.
    std::vector<std::vector<std::string>> classes(e.datasets.size());
    std::vector<std::map<std::string, ClassData>> class_data(e.datasets.size());
    for (size_t d = 0; d < e.datasets.size(); ++d) {
        const auto& spec = e.datasets[d];
        const auto dataset = data::open_dataset(spec.type, spec.root, spec.split_csv);
        const auto available = dataset->classes();
        classes[d] = spec.classes.empty() ? available : spec.classes;
        for (size_t i = 0; i < classes[d].size(); ++i) {
            const auto& c = classes[d][i];
            if (!std::binary_search(available.begin(), available.end(), c)) {
                throw ConfigError(
                    fmt::format("dataset {} at {} has no class '{}' ({}: datasets[{}].classes[{}])",
                                spec.name, spec.root, c, e.source, d, i));
            }
            // A broken class (no test images, a defect image without its mask,
            // no training images) fails its own cells; the others run on.
            ClassData cd;
            try {
                cd.tests = dataset->test_samples(c);
                cd.pool = dataset->train_good(c);
            } catch (const DatasetError& err) {
                cd = ClassData{};
                cd.error = err.what();
                log::warn("experiment", "class {} of dataset {}: {}; its cells will fail", c,
                          spec.name, cd.error);
            }
            class_data[d][c] = std::move(cd);
        }
    }
    const auto specs = expand_grid(e, classes);

    // --- Variants, with their keys from the pipeline (loading each model once).
    std::map<std::string, size_t> variant_index;
    std::map<std::pair<size_t, std::string>, size_t> text_index;  // (variant, class) -> unit
    std::map<std::string, size_t> image_index;                    // unit key -> unit
    std::map<size_t, std::unique_ptr<method::Pipeline>> pipelines;
    FileHashes hashes;
    const auto scan = cache.scan(/*verify=*/true, repair);
    plan.corrupt_cache_files = scan.corrupt;
    if (!scan.unindexed.empty()) {
        log::info("cache",
                  "{} shard file(s) in {} have no index entry (a run was killed while "
                  "publishing); their embeddings are recomputed",
                  scan.unindexed.size(), cache.folder());
    }

    auto image_unit = [&](size_t variant, const std::string& path) {
        const std::string key = cache::image_unit_key(plan.variants[variant].embedding_key,
                                                      hashes.get(path), e.cache_float16);
        auto it = image_index.find(key);
        if (it != image_index.end()) return it->second;
        image_index[key] = plan.image_units.size();
        plan.image_units.push_back({key, path, variant, cache.has_image(key)});
        return plan.image_units.size() - 1;
    };

    for (const auto& spec : specs) {
        PlannedCell cell;
        cell.spec = spec;
        const std::string vkey =
            std::to_string(spec.backbone) + "|" + spec.settings.to_json().dump();
        auto vit = variant_index.find(vkey);
        if (vit == variant_index.end()) {
            const auto& backbone = e.backbones[spec.backbone];
            log::info("experiment", "loading {} for keys ({}{})", backbone.name, spec.prompt_set,
                      spec.switches.empty() ? "" : ", " + spec.switches);
            std::unique_ptr<method::Pipeline> pipeline;
            try {
                pipeline = std::make_unique<method::Pipeline>(backbone, spec.settings);
            } catch (const ConfigError& err) {
                // Say which part of the experiment asked for it.
                throw ConfigError(fmt::format("{} ({}: backbone {} with prompt set {})", err.what(),
                                              e.source, backbone.name, spec.settings.prompt_set));
            }
            Variant v{spec.backbone, spec.settings, pipeline->image_embedding_key(),
                      pipeline->image_gflops(), pipeline->random_weights()};
            pipelines[plan.variants.size()] = std::move(pipeline);
            vit = variant_index.emplace(vkey, plan.variants.size()).first;
            plan.variants.push_back(std::move(v));
        }
        cell.variant = vit->second;

        // Text prototypes: one unit per (variant, class), deduplicated by key.
        const auto tkey = std::make_pair(cell.variant, spec.class_name);
        auto tit = text_index.find(tkey);
        if (tit == text_index.end()) {
            const std::string key = pipelines.at(cell.variant)->text_key(spec.class_name);
            size_t found = plan.text_units.size();
            for (size_t i = 0; i < plan.text_units.size(); ++i) {
                if (plan.text_units[i].key == key) found = i;
            }
            if (found == plan.text_units.size()) {
                bool cached = false;
                if (cache.has_text(key)) {
                    try {
                        cache.read_text(key);
                        cached = true;
                    } catch (const Error& err) {
                        log::warn("cache", "corrupt cache file {} ({}); {}it will be recomputed",
                                  cache.text_path(key), err.what(), repair ? "removing it, " : "");
                        plan.corrupt_cache_files.push_back(cache.text_path(key));
                        std::error_code ec;
                        if (repair) fs::remove(cache.text_path(key), ec);
                    }
                }
                plan.text_units.push_back({key, spec.class_name, cell.variant, cached});
            }
            tit = text_index.emplace(tkey, found).first;
        }
        cell.text = tit->second;

        // Test images and the (class, k, seed) reference draw.
        const ClassData& cd = class_data[spec.dataset].at(spec.class_name);
        Sha256 inputs;
        inputs.update(spec.id + "\n" + spec.settings.to_json().dump() + "\n" +
                      plan.text_units[cell.text].key + "\n");
        if (!cd.error.empty()) {
            cell.error = cd.error;
        } else if (spec.k > static_cast<int>(cd.pool.size())) {
            cell.error = fmt::format(
                "k = {} but class {} of dataset {} has only {} training images ({}: grid.shots)",
                spec.k, spec.class_name, e.datasets[spec.dataset].name, cd.pool.size(), e.source);
        }
        if (cell.error.empty()) {
            for (const auto& s : cd.tests) {
                TestImage t{image_unit(cell.variant, s.image_path), s.image_path, s.mask_path,
                            s.label, s.defect_type};
                inputs.update(plan.image_units[t.unit].key + " " + std::to_string(t.label) + " " +
                              (t.mask_path.empty() ? "-" : hashes.get(t.mask_path)) + "\n");
                cell.tests.push_back(std::move(t));
            }
            cell.reference_paths = data::sample_references(spec.class_name, cd.pool, spec.k,
                                                           static_cast<uint64_t>(spec.seed));
            for (const auto& r : cell.reference_paths) {
                cell.references.push_back(image_unit(cell.variant, r));
                inputs.update("ref " + plan.image_units[cell.references.back()].key + "\n");
            }
        }
        cell.inputs_key = inputs.hex_digest();
        cell.done = cell.error.empty() && !out_dir.empty() &&
                    stored_record_matches(cell_record_path(out_dir, spec.id), cell.inputs_key);
        plan.cells.push_back(std::move(cell));
    }
    return plan;
}

}  // namespace winclip::experiment
