#include "experiment/runner.h"

#include <fmt/format.h>
#include <torch/version.h>  // the TORCH_VERSION macro only, for run.json
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "cache/atomic_file.h"
#include "cache/embedding_cache.h"
#include "core/context.h"
#include "core/error.h"
#include "core/log.h"
#include "data/dataset.h"
#include "dist/mpi.h"
#include "dist/work_queue.h"
#include "experiment/config.h"
#include "experiment/plan.h"
#include "io/file.h"
#include "io/hdf5.h"
#include "metrics/metrics.h"
#include "report/cells.h"
#include "report/table.h"

namespace winclip::experiment {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string default_out_dir(const std::string& experiment_path) {
    return (fs::path("results") / fs::path(experiment_path).stem()).string();
}

namespace {

// ---- helpers -------------------------------------------------------------------

std::string one_line(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    return s;
}

std::string duration_text(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const auto s = static_cast<long>(seconds + 0.5);
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
    return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
}

// Rank 0's progress display: a rewritten line on a terminal, a plain log line
// every few seconds otherwise (logs of batch jobs stay readable). Counts work
// items (embedding units, cells), each task weighing as many items as it holds.
class Progress {
  public:
    Progress(std::string phase, std::string items, std::vector<size_t> weights)
        : phase_(std::move(phase)),
          items_(std::move(items)),
          weights_(std::move(weights)),
          start_(Clock::now()),
          tty_(::isatty(STDERR_FILENO) != 0) {
        for (size_t w : weights_) total_ += w;
    }

    void update(size_t /*tasks_done*/, size_t /*tasks*/, size_t finished) {
        done_ += weights_.at(finished);
        const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
        const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
        const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
        const std::string text = fmt::format("{}: {}/{} {} done, {:.2f}/s, ETA {}", phase_, done_,
                                             total_, items_, rate, duration_text(eta));
        if (tty_) {
            std::fprintf(stderr, "\r%s\033[K%s", text.c_str(), done_ == total_ ? "\n" : "");
            std::fflush(stderr);
        } else if (done_ == total_ || elapsed - last_log_ >= 10.0) {
            last_log_ = elapsed;
            log::info("progress", "{}", text);
        }
    }

  private:
    std::string phase_, items_;
    std::vector<size_t> weights_;
    size_t total_ = 0, done_ = 0;
    Clock::time_point start_;
    bool tty_;
    double last_log_ = -1e9;
};

// Keeps the two most recently used pipelines of this rank: tasks come in
// variant order, so a small cache avoids reloading without holding every model.
class PipelinePool {
  public:
    PipelinePool(const Experiment& e, const Plan& p) : e_(e), p_(p) {}

    method::Pipeline& get(size_t variant) {
        for (auto it = loaded_.begin(); it != loaded_.end(); ++it) {
            if (it->first == variant) {
                loaded_.splice(loaded_.begin(), loaded_, it);
                return *loaded_.front().second;
            }
        }
        const auto& v = p_.variants.at(variant);
        loaded_.emplace_front(
            variant, std::make_unique<method::Pipeline>(e_.backbones.at(v.backbone), v.settings));
        if (loaded_.size() > 2) loaded_.pop_back();
        return *loaded_.front().second;
    }

  private:
    const Experiment& e_;
    const Plan& p_;
    std::list<std::pair<size_t, std::unique_ptr<method::Pipeline>>> loaded_;
};

// One extraction task: a batch of image units of one variant, or one text unit.
struct ExtractTask {
    bool text = false;
    size_t variant = 0;
    std::vector<size_t> units;  // image unit indices, or the one text unit
};

std::vector<ExtractTask> extraction_tasks(const Plan& plan, int batch_size) {
    std::vector<ExtractTask> tasks;
    // Image batches first (they cost most), grouped by variant in unit order:
    // the batches, and so the numbers, do not depend on the rank layout.
    std::map<size_t, std::vector<size_t>> by_variant;
    for (size_t i = 0; i < plan.image_units.size(); ++i) {
        if (!plan.image_units[i].cached) by_variant[plan.image_units[i].variant].push_back(i);
    }
    for (const auto& [variant, units] : by_variant) {
        for (size_t at = 0; at < units.size(); at += static_cast<size_t>(batch_size)) {
            ExtractTask t;
            t.variant = variant;
            const size_t end = std::min(units.size(), at + static_cast<size_t>(batch_size));
            t.units.assign(units.begin() + static_cast<long>(at),
                           units.begin() + static_cast<long>(end));
            tasks.push_back(std::move(t));
        }
    }
    for (size_t i = 0; i < plan.text_units.size(); ++i) {
        if (plan.text_units[i].cached) continue;
        tasks.push_back({true, plan.text_units[i].variant, {i}});
    }
    return tasks;
}

// ---- extraction --------------------------------------------------------------

nlohmann::json run_extract_task(const Experiment& e, const Plan& plan, const ExtractTask& task,
                                PipelinePool& pool, cache::EmbeddingCache& cache) {
    nlohmann::json out;
    out["failed"] = nlohmann::json::object();  // unit key -> error
    out["image_passes"] = 0;
    out["text_passes"] = 0;
    if (task.text) {
        const TextUnit& u = plan.text_units.at(task.units.at(0));
        try {
            auto& pipeline = pool.get(task.variant);
            const FloatArray prototypes = pipeline.text_prototypes(u.class_name);
            out["text_passes"] = 1;
            cache.write_text(u.key, prototypes,
                             fmt::format("class {} with {}", u.class_name,
                                         plan.variants[task.variant].settings.to_json().dump()));
        } catch (const Error& err) {
            out["failed"][u.key] =
                one_line(fmt::format("text prototypes of {}: {}", u.class_name, err.what()));
        }
        return out;
    }

    std::vector<std::string> paths;
    for (size_t i : task.units) paths.push_back(plan.image_units[i].path);
    std::vector<std::string> keys;
    std::vector<cache::StoredImage> stored;
    try {
        auto& pipeline = pool.get(task.variant);
        auto embed = [&](const std::vector<std::string>& batch, const std::vector<size_t>& units) {
            std::vector<method::ImageGeometry> geometry;
            auto embeddings = pipeline.embed_images(batch, &geometry);
            WINCLIP_CHECK(embeddings.size() == batch.size() && geometry.size() == batch.size());
            out["image_passes"] = out["image_passes"].get<int>() + static_cast<int>(batch.size());
            for (size_t j = 0; j < batch.size(); ++j) {
                keys.push_back(plan.image_units[units[j]].key);
                stored.push_back({std::move(embeddings[j]), geometry[j]});
            }
        };
        try {
            embed(paths, task.units);
        } catch (const Error&) {
            // One bad image fails the whole batch; embed one at a time to find
            // it, so the other images (and the cells that need only them) go on.
            keys.clear();
            stored.clear();
            for (size_t j = 0; j < paths.size(); ++j) {
                try {
                    embed({paths[j]}, {task.units[j]});
                } catch (const Error& err) {
                    out["failed"][plan.image_units[task.units[j]].key] = one_line(err.what());
                }
            }
        }
        if (!stored.empty()) cache.write_images(keys, stored, e.cache_float16);
    } catch (const Error& err) {
        // The model or the cache itself failed: every unit of the batch is lost.
        for (size_t i : task.units) out["failed"][plan.image_units[i].key] = one_line(err.what());
    }
    return out;
}

// ---- scoring -------------------------------------------------------------------

// Slices grid map i out of [N, g, g].
FloatArray grid_map_of(const FloatArray& maps, size_t i) {
    WINCLIP_CHECK(maps.shape.size() == 3);
    const int64_t g0 = maps.shape[1], g1 = maps.shape[2];
    FloatArray m({g0, g1});
    const auto offset = static_cast<long>(i) * g0 * g1;
    std::copy(maps.values.begin() + offset, maps.values.begin() + offset + g0 * g1,
              m.values.begin());
    return m;
}

report::CellRecord base_record(const Experiment& e, const PlannedCell& c) {
    report::CellRecord r;
    r.id = c.spec.id;
    r.dataset = e.datasets.at(c.spec.dataset).name;
    r.class_name = c.spec.class_name;
    r.backbone = e.backbones.at(c.spec.backbone).name;
    r.prompt_set = c.spec.prompt_set;
    r.method = c.spec.method;
    r.k = c.spec.k;
    r.seed = c.spec.seed;
    r.switches = c.spec.switches;
    return r;
}

// The test set of the class this rank scored last. Consecutive cells of one
// class (methods, shots, seeds) share their test images, and cells reach a rank
// in id order within each size, so the embeddings are read from the cache and
// the masks decoded once per run of such cells instead of once per cell. One
// set is kept: a cell holds its test set in memory anyway.
class TestSetCache {
  public:
    struct TestSet {
        std::vector<TestImage> tests;  // what the set was read for
        std::vector<method::ImageEmbeddings> embeddings;
        std::vector<method::ImageGeometry> geometry;
        // Decoded on first use, in the order a cell asks for them, so a bad
        // mask fails a cell with the same message as without the cache.
        std::vector<std::optional<io::Mask>> masks;
    };

    const TestSet& get(const Plan& plan, const PlannedCell& c, const cache::EmbeddingCache& cache) {
        if (set_ && same_tests(set_->tests, c.tests)) return *set_;
        set_.reset();  // release the old set before reading the new one
        auto set = std::make_unique<TestSet>();
        set->tests = c.tests;
        for (const auto& t : c.tests) {
            auto s = cache.read_image(plan.image_units[t.unit].key);
            set->embeddings.push_back(std::move(s.embeddings));
            set->geometry.push_back(s.geometry);
        }
        set->masks.resize(c.tests.size());
        set_ = std::move(set);
        return *set_;
    }

    // Mask of test image i of the set `get` returned last.
    const io::Mask& mask(size_t i) {
        WINCLIP_CHECK(set_ && i < set_->masks.size());
        auto& slot = set_->masks[i];
        if (!slot) {
            const auto& t = set_->tests[i];
            slot = data::load_sample_mask({t.path, t.mask_path, t.label, t.defect});
        }
        return *slot;
    }

  private:
    static bool same_tests(const std::vector<TestImage>& a, const std::vector<TestImage>& b) {
        return std::equal(
            a.begin(), a.end(), b.begin(), b.end(), [](const TestImage& x, const TestImage& y) {
                return x.unit == y.unit && x.path == y.path && x.mask_path == y.mask_path &&
                       x.label == y.label && x.defect == y.defect;
            });
    }

    std::unique_ptr<TestSet> set_;
};

void score_cell(const Plan& plan, const PlannedCell& c,
                const std::map<std::string, std::string>& failed_units, PipelinePool& pool,
                TestSetCache& test_sets, const cache::EmbeddingCache& cache,
                report::CellRecord& r) {
    // Planning already found this cell's files unusable.
    if (!c.error.empty()) throw DatasetError(c.error);
    // Inputs that could not be embedded fail the cell with their own message.
    auto check_unit = [&](const std::string& key, const std::string& path) {
        const auto it = failed_units.find(key);
        if (it != failed_units.end()) throw IoError("cannot embed " + path + ": " + it->second);
    };
    const auto& text = plan.text_units.at(c.text);
    check_unit(text.key, "prompts of " + text.class_name);
    for (const auto& t : c.tests) check_unit(plan.image_units[t.unit].key, t.path);
    for (size_t i = 0; i < c.references.size(); ++i) {
        check_unit(plan.image_units[c.references[i]].key, c.reference_paths[i]);
    }

    // Embeddings come from the cache only: no forward pass happens here.
    const FloatArray prototypes = cache.read_text(text.key);
    const TestSetCache::TestSet& tests = test_sets.get(plan, c, cache);
    std::vector<method::ImageEmbeddings> references;
    for (size_t u : c.references)
        references.push_back(cache.read_image(plan.image_units[u].key).embeddings);

    // WinCLIP (k = 0) or WinCLIP+ (k > 0), paper section 4.
    const auto& pipeline = pool.get(c.variant);
    const method::ScoreResult result = pipeline.score(prototypes, tests.embeddings, references);
    WINCLIP_CHECK(result.image_scores.size() == c.tests.size());

    // Metrics at each mask's native resolution.
    metrics::ImageMetricState image_state;
    metrics::PixelMetricState pixel_state;
    for (size_t i = 0; i < c.tests.size(); ++i) {
        const auto& t = c.tests[i];
        image_state.add(t.label, result.image_scores[i], t.path);
        const io::Mask& mask = test_sets.mask(i);
        const FloatArray map =
            method::upsample_to_native(grid_map_of(result.grid_maps, i), tests.geometry[i]);
        pixel_state.add_image(t.path, mask.values.data(), mask.height, mask.width, map.data(),
                              static_cast<int>(map.shape.at(0)), static_cast<int>(map.shape.at(1)));
    }
    const auto im = image_state.compute();
    const auto pm = pixel_state.compute();
    r.metrics = {im.auroc,      im.aupr,   im.f1_max,      pm.pixel_auroc,
                 pm.pixel_aupr, pm.au_pro, pm.pixel_f1_max};
}

nlohmann::json run_cell_task(const Experiment& e, const Plan& plan, const PlannedCell& c,
                             const std::map<std::string, std::string>& failed_units,
                             PipelinePool& pool, TestSetCache& test_sets,
                             const cache::EmbeddingCache& cache, const std::string& out_dir,
                             int rank) {
    const auto t0 = Clock::now();
    report::CellRecord r = base_record(e, c);
    try {
        score_cell(plan, c, failed_units, pool, test_sets, cache, r);
    } catch (const Error& err) {
        // Bad input fails this cell only; the record says why, the rest go on.
        r.metrics.fill(std::nan(""));
        r.status = "failed";
        r.error = one_line(err.what());
        log::warn("experiment", "cell {} failed: {}", c.spec.id, r.error);
    }
    nlohmann::json j;
    j["record"] = r.to_json();
    j["inputs_key"] = c.inputs_key;
    j["rank"] = rank;
    j["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
    j["reference_files"] = c.reference_paths;
    j["finished_utc"] = utc_timestamp();
    // Published at once, so a kill after this point loses nothing of this cell.
    cache::publish_text(cell_record_path(out_dir, c.spec.id), j.dump(1) + "\n");
    return j;
}

// ---- plan text -------------------------------------------------------------------

// The yardstick for time estimates: the public Python reference embeds one
// ViT-B-16-plus-240 image with all its windows (669 GFLOP, docs/scaling.md)
// in 4.4 s on 2 CPU cores, about 152 GFLOP/s. Work is estimated from each
// backbone's own FLOPs at that rate; a GPU or more cores divide it.
constexpr double kReferenceGflopPerSecondTwoCores = 669.0 / 4.4;

void print_plan(const Experiment& e, const Plan& plan, std::FILE* out) {
    std::fprintf(out, "experiment %s (%s)\n", e.name.c_str(), e.source.c_str());
    size_t failing = 0;
    for (const auto& c : plan.cells) failing += c.error.empty() ? 0 : 1;
    std::fprintf(out, "cells: %zu (%zu already finished, %zu cannot run)\n", plan.cells.size(),
                 plan.done_cells(), failing);
    for (const auto& c : plan.cells) {
        if (!c.error.empty()) {
            std::fprintf(out, "  %s  (cannot run: %s)\n", c.spec.id.c_str(), c.error.c_str());
            continue;
        }
        std::fprintf(out, "  %s%s  [%zu test images, %zu references]\n", c.spec.id.c_str(),
                     c.done ? "  (done)" : "", c.tests.size(), c.references.size());
    }
    std::fprintf(out, "image embedding units: %zu (%zu cached, %zu to compute)\n",
                 plan.image_units.size(), plan.cached_images(),
                 plan.image_units.size() - plan.cached_images());
    // Units belong to an embedding key, which several variants (switch sets
    // that only change scoring) may share: list each key once.
    std::map<std::string, std::vector<size_t>> key_variants;
    for (size_t v = 0; v < plan.variants.size(); ++v)
        key_variants[plan.variants[v].embedding_key].push_back(v);
    double gflop = 0;
    for (const auto& [key, variants] : key_variants) {
        size_t n = 0, cached = 0;
        for (const auto& u : plan.image_units) {
            if (plan.variants[u.variant].embedding_key != key) continue;
            ++n;
            cached += u.cached ? 1 : 0;
        }
        const Variant& first = plan.variants[variants.front()];
        gflop += static_cast<double>(n - cached) * first.image_gflops;
        std::string used_by;
        for (size_t v : variants) {
            const std::string suffix = plan.variants[v].settings.switch_suffix();
            used_by += (used_by.empty() ? "" : ", ") +
                       prompt_set_id(plan.variants[v].settings.prompt_set) +
                       (suffix.empty() ? "" : "/" + suffix);
        }
        std::fprintf(out,
                     "  %s, embedding key %.16s...: %zu images (%zu cached), %.1f GFLOP per "
                     "image; used by %s\n",
                     e.backbones[first.backbone].name.c_str(), key.c_str(), n, cached,
                     first.image_gflops, used_by.c_str());
    }
    std::fprintf(out, "text prototype units: %zu (%zu cached, %zu to compute)\n",
                 plan.text_units.size(), plan.cached_texts(),
                 plan.text_units.size() - plan.cached_texts());
    size_t scored = 0;
    for (const auto& c : plan.cells) {
        if (!c.done) scored += c.tests.size();
    }
    const size_t forward = plan.image_units.size() - plan.cached_images();
    std::fprintf(out,
                 "work: %zu image forward passes (%.1f TFLOP; about %s on one 2-core CPU rank "
                 "at the %.0f GFLOP/s measured for the reference implementation), %zu text "
                 "ensembles, %zu cells to score (%zu test-image scorings, no forward pass)\n",
                 forward, gflop / 1000.0,
                 duration_text(gflop / kReferenceGflopPerSecondTwoCores).c_str(),
                 kReferenceGflopPerSecondTwoCores, plan.text_units.size() - plan.cached_texts(),
                 plan.cells.size() - plan.done_cells(), scored);
    if (!plan.corrupt_cache_files.empty()) {
        std::fprintf(out, "corrupt cache files (a run deletes and recomputes them):\n");
        for (const auto& f : plan.corrupt_cache_files) std::fprintf(out, "  %s\n", f.c_str());
    }
}

std::string resolve_out_dir(const RunOptions& o) {
    return o.out_dir.empty() ? default_out_dir(o.experiment) : o.out_dir;
}

// The experiment with the command line's overrides applied.
Experiment load_for_run(const RunOptions& o) {
    Experiment e = load_experiment(o.experiment);
    if (!o.cache_dir.empty()) e.cache_folder = o.cache_dir;
    if (!o.device.empty()) {
        e.device = o.device;
        for (auto& b : e.backbones) b.device = o.device;
    }
    return e;
}

}  // namespace

// ---- plan command ----------------------------------------------------------------

int plan_experiment(const RunOptions& options) {
    Experiment e = load_for_run(options);
    cache::EmbeddingCache cache(e.cache_folder);
    // A dry run: corrupt cache files are reported, not deleted.
    const Plan plan = build_plan(e, cache, resolve_out_dir(options), /*repair=*/false);
    print_plan(e, plan, stdout);
    return 0;
}

// ---- run command -------------------------------------------------------------------

int run_experiment(const RunOptions& options) {
    dist::Session session;
    const auto started = Clock::now();
    const std::string started_utc = utc_timestamp();
    const int rank = session.rank();
    // This build's LibTorch is CPU-only; on GPU nodes the node-local rank is the
    // device index the pipeline would take.
    log::info("dist", "rank {} of {} on {} (node-local rank {} of {}): {} thread(s)", rank,
              session.size(), session.hosts()[static_cast<size_t>(rank)], session.local_rank(),
              session.local_size(), session.threads());

    // --- 1. Read and plan on rank 0; every rank gets the same plan.
    Experiment e;
    std::string message;
    const std::string out_dir = resolve_out_dir(options);
    Plan plan;
    if (rank == 0) {
        try {
            e = load_for_run(options);
            // A device this rank cannot use stops the run before any work.
            try {
                method::device_for_this_process(e.device);
            } catch (const ConfigError& err) {
                throw ConfigError(
                    fmt::format("{} ({}: run.device or --device)", err.what(), e.source));
            }
            for (const auto& b : e.backbones) {
                if (b.random_weights) {
                    log::warn("experiment",
                              "backbone {} has random weights: scores are meaningless", b.name);
                }
            }
            fs::create_directories(fs::path(out_dir) / "cells");
            // Temporary files of a killed run are never read; clear them.
            for (const auto& f : fs::directory_iterator(fs::path(out_dir) / "cells")) {
                if (cache::is_temporary_name(f.path().filename().string())) fs::remove(f.path());
            }
            cache::EmbeddingCache cache(e.cache_folder);
            plan = build_plan(e, cache, out_dir);
            // The pipeline also recognises the bundled demo weights by their
            // hash, whatever the YAML says; tables and run.json must say so.
            for (const auto& v : plan.variants) {
                if (v.random_weights) e.backbones[v.backbone].random_weights = true;
            }
            message =
                nlohmann::json{{"experiment_folder", e.folder}, {"plan", plan.to_json()}}.dump();
        } catch (const fs::filesystem_error& err) {
            std::string stop = "!";
            session.broadcast(stop);
            throw IoError(err.what());
        } catch (...) {
            // Whatever stops rank 0 here must release the ranks waiting for
            // the plan, or they would wait forever.
            std::string stop = "!";
            session.broadcast(stop);
            throw;
        }
    }
    session.broadcast(message);
    if (message == "!") return 2;  // rank 0 reports the error
    // From here on every rank works in step; an unexpected exception on any
    // rank (a bug, a full disk while publishing) would leave the others
    // waiting in a collective call, so it ends the whole job with its message.
    try {
        if (rank != 0) {
            e = load_for_run(options);
            plan = Plan::from_json(nlohmann::json::parse(message).at("plan"));
        }
        message.clear();
        // Each rank's device (its node-local GPU, or the CPU) and threads,
        // logged and kept for run.json.
        const std::string device = method::device_for_this_process(e.device);
        log::info("dist", "rank {}: device {} (requested {}), {} CPU thread(s)", rank, device,
                  e.device, session.threads());
        const auto layout = session.gather(nlohmann::json{
            {"rank", rank},
            {"host", session.hosts()[static_cast<size_t>(rank)]},
            {"local_rank", session.local_rank()},
            {"threads", session.threads()},
            {"device", device}}.dump());
        if (rank == 0) {
            log::info("experiment",
                      "{} cells ({} finished earlier), {} image units ({} cached), {} text units "
                      "({} cached)",
                      plan.cells.size(), plan.done_cells(), plan.image_units.size(),
                      plan.cached_images(), plan.text_units.size(), plan.cached_texts());
        }
        cache::EmbeddingCache cache(e.cache_folder);
        cache.scan(/*verify=*/false);
        PipelinePool pool(e, plan);

        // --- 2. Extract the embeddings the cache lacks.
        const auto tasks = extraction_tasks(plan, e.batch_size);
        std::vector<size_t> task_units;
        for (const auto& t : tasks) task_units.push_back(t.units.size());
        Progress extract_progress("extract", "embedding units", task_units);
        const auto extract_results = dist::run_tasks(
            session, tasks.size(),
            [&](size_t i) { return run_extract_task(e, plan, tasks[i], pool, cache).dump(); },
            [&](size_t done, size_t n, size_t task) { extract_progress.update(done, n, task); });

        long image_passes = 0, text_passes = 0;
        std::map<std::string, std::string> failed_units;
        std::string failures_message;
        if (rank == 0) {
            for (const auto& r : extract_results) {
                const auto j = nlohmann::json::parse(r.payload);
                image_passes += j.at("image_passes").get<long>();
                text_passes += j.at("text_passes").get<long>();
                for (const auto& [key, err] : j.at("failed").items())
                    failed_units[key] = err.get<std::string>();
            }
            failures_message = nlohmann::json(failed_units).dump();
        }
        session.broadcast(failures_message);
        failed_units =
            nlohmann::json::parse(failures_message).get<std::map<std::string, std::string>>();
        cache.scan(/*verify=*/false);  // see the shards every rank wrote

        // --- 3. Score the unfinished cells, most test images first. The sort is
        // stable over the id order, so a class's cells stay together and each
        // rank's TestSetCache reads a class's test set about once.
        std::vector<size_t> todo;
        for (size_t i = 0; i < plan.cells.size(); ++i) {
            if (!plan.cells[i].done) todo.push_back(i);
        }
        std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) {
            return plan.cells[a].tests.size() > plan.cells[b].tests.size();
        });
        Progress score_progress("score", "cells", std::vector<size_t>(todo.size(), 1));
        TestSetCache test_sets;
        const auto cell_results = dist::run_tasks(
            session, todo.size(),
            [&](size_t i) {
                return run_cell_task(e, plan, plan.cells[todo[i]], failed_units, pool, test_sets,
                                     cache, out_dir, rank)
                    .dump();
            },
            [&](size_t done, size_t n, size_t task) { score_progress.update(done, n, task); });

        // --- 4. Reduce on rank 0.
        int status = 0;
        if (rank == 0) {
            std::map<std::string, nlohmann::json> this_run;
            for (const auto& r : cell_results) {
                auto j = nlohmann::json::parse(r.payload);
                this_run[j.at("record").at("id").get<std::string>()] = j;
            }
            std::vector<report::CellRecord> records;
            nlohmann::json cells_json = nlohmann::json::array();
            nlohmann::json failures = nlohmann::json::array();
            for (const auto& c : plan.cells) {
                nlohmann::json j;
                const auto it = this_run.find(c.spec.id);
                const bool now = it != this_run.end();
                const std::string path = cell_record_path(out_dir, c.spec.id);
                j = now ? it->second : nlohmann::json::parse(io::read_file_bytes(path));
                records.push_back(report::CellRecord::from_json(j.at("record"), path));
                const auto& rec = records.back();
                cells_json.push_back({{"id", rec.id},
                                      {"status", rec.status},
                                      {"error", rec.error},
                                      {"rank", j.value("rank", -1)},
                                      {"seconds", j.value("seconds", 0.0)},
                                      {"reference_files", c.reference_paths},
                                      {"computed_in_this_run", now}});
                if (!rec.ok())
                    failures.push_back(
                        {{"id", rec.id}, {"rank", j.value("rank", -1)}, {"error", rec.error}});
            }
            std::set<std::string> random_backbones;
            for (const auto& b : e.backbones) {
                if (b.random_weights) random_backbones.insert(b.name);
            }
            cache::publish_text((fs::path(out_dir) / "cells.csv").string(),
                                report::cells_csv(records));
            cache::publish_text((fs::path(out_dir) / "table.md").string(),
                                report::tables_markdown(records, random_backbones));

            // run.json: everything that depends on the layout of this run.
            nlohmann::json run;
            run["schema"] = "winclip-run-1";
            run["experiment"] = e.to_json();
            auto context = build_context();
            context["mpi"] = dist::mpi_version();
            context["hdf5"] = io::hdf5_version();
            context["libtorch"] = TORCH_VERSION;
            run["context"] = context;
            run["started_utc"] = started_utc;
            run["finished_utc"] = utc_timestamp();
            run["wall_seconds"] = std::chrono::duration<double>(Clock::now() - started).count();
            run["ranks"] = session.size();
            run["hosts"] = session.hosts();
            run["rank_layout"] = nlohmann::json::array();
            for (const auto& l : layout) run["rank_layout"].push_back(nlohmann::json::parse(l));
            run["out"] = out_dir;
            run["seeds"] = e.seeds;
            run["plan"] = {{"cells", plan.cells.size()},
                           {"cells_finished_earlier", plan.done_cells()},
                           {"image_units", plan.image_units.size()},
                           {"image_units_cached", plan.cached_images()},
                           {"text_units", plan.text_units.size()},
                           {"text_units_cached", plan.cached_texts()},
                           {"corrupt_cache_files", plan.corrupt_cache_files}};
            run["forward_passes"] = {{"image", image_passes}, {"text", text_passes}};
            nlohmann::json extract_json = nlohmann::json::array();
            for (size_t i = 0; i < extract_results.size(); ++i) {
                extract_json.push_back({{"kind", tasks[i].text ? "text" : "images"},
                                        {"units", tasks[i].units.size()},
                                        {"rank", extract_results[i].rank},
                                        {"seconds", extract_results[i].seconds}});
            }
            run["extract_tasks"] = extract_json;
            run["failed_units"] = failed_units;
            run["cells"] = cells_json;
            run["failures"] = failures;
            cache::publish_text((fs::path(out_dir) / "run.json").string(), run.dump(2) + "\n");

            log::info("experiment", "{} image forward passes, {} text forward passes in this run",
                      image_passes, text_passes);
            log::info("experiment",
                      "wrote {}/cells.csv, table.md and run.json ({} cells, {:.1f} s)", out_dir,
                      records.size(), run["wall_seconds"].get<double>());
            for (const auto& f : failures) {
                log::error("experiment", "failed cell {} (rank {}): {}", f["id"].get<std::string>(),
                           f["rank"].get<int>(), f["error"].get<std::string>());
            }
            status = failures.empty() ? 0 : 1;
        }
        std::string status_text = std::to_string(status);
        session.broadcast(status_text);
        return std::stoi(status_text);
    } catch (const std::exception& err) {
        if (session.size() == 1) throw;
        log::error("experiment", "rank {} stopped the job: {}", rank, err.what());
        session.abort(3);
    }
}

}  // namespace winclip::experiment
