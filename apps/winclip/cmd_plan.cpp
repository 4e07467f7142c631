// `winclip plan EXPERIMENT.yaml [--out DIR] [--cache DIR]`: prints the grid,
// the embedding units, how many are cached and the work left; runs nothing.
#include <memory>

#include "apps/winclip/command.h"
#include "experiment/runner.h"

namespace {

const winclip::cli::Registration kPlan{
    "plan", "Show an experiment's cells, embedding units, cache hits and remaining work",
    [](CLI::App& app) {
        auto opts = std::make_shared<winclip::experiment::RunOptions>();
        app.add_option("experiment", opts->experiment, "Experiment YAML")->required();
        app.add_option("--out", opts->out_dir,
                       "Output folder whose finished cells count as done (default: "
                       "results/<experiment file name>/)");
        app.add_option("--cache", opts->cache_dir,
                       "Embedding cache folder (default: the YAML's cache.folder)");
        return [opts]() -> int { return winclip::experiment::plan_experiment(*opts); };
    }};

}  // namespace
