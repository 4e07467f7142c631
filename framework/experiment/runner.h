// `winclip run` and `winclip plan`: the engine that takes an experiment from
// YAML to cells.csv, table.md and run.json, alone or under mpirun.
//
// One run, on every rank:
//   1. rank 0 reads the YAML, plans (plan.h) and broadcasts the plan;
//   2. extract: image batches and text prototypes missing from the cache are
//      handed out dynamically (dist/work_queue.h); each rank writes its own
//      cache shards;
//   3. score: unfinished cells are handed out the same way; each reads its
//      embeddings from the cache, scores, computes metrics at the masks'
//      native size and publishes its record under <out>/cells/ at once, so a
//      killed run resumes where it stopped;
//   4. rank 0 reduces every record into cells.csv and table.md (identical for
//      any rank count) and writes run.json (ranks, hosts, times, versions).
#pragma once

#include <string>

namespace winclip::experiment {

struct RunOptions {
    std::string experiment;  // path to the YAML
    std::string out_dir;     // empty: results/<experiment file stem>/ under the current folder
    std::string cache_dir;   // empty: the YAML's cache.folder
    std::string device;      // empty: the YAML's run.device (auto when absent)
};

// Returns the process exit status: 0 when every cell is ok, 1 when some cell
// failed (one summary line each on stderr). Input errors that stop the whole
// run (bad YAML, missing dataset) throw on rank 0 and make the other ranks
// return 2.
int run_experiment(const RunOptions& options);

// Prints the expanded grid, the embedding units, how many are cached and the
// work estimate to stdout. Single process; does no forward pass.
int plan_experiment(const RunOptions& options);

// The default output folder for an experiment file: results/<stem>.
std::string default_out_dir(const std::string& experiment_path);

}  // namespace winclip::experiment
