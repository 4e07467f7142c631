// `winclip run EXPERIMENT.yaml [--out DIR] [--cache DIR] [--device D]`: runs a grid, alone
// or under mpirun (see experiment/runner.h and docs/running-on-a-cluster.md).
#include <memory>

#include "apps/winclip/command.h"
#include "experiment/runner.h"

namespace {

const winclip::cli::Registration kRun{
    "run", "Run an experiment grid (alone or under mpirun); writes cells.csv, table.md, run.json",
    [](CLI::App& app) {
        auto opts = std::make_shared<winclip::experiment::RunOptions>();
        app.add_option("experiment", opts->experiment, "Experiment YAML")->required();
        app.add_option("--out", opts->out_dir,
                       "Output folder (default: results/<experiment file name>/)");
        app.add_option("--cache", opts->cache_dir,
                       "Embedding cache folder (default: the YAML's cache.folder)");
        app.add_option("--device", opts->device,
                       "auto | cpu | cuda | cuda:N (default: the YAML's run.device, else auto: "
                       "GPU node-local rank % GPUs when LibTorch has CUDA, else CPU)");
        return [opts]() -> int { return winclip::experiment::run_experiment(*opts); };
    }};

}  // namespace
