// Dynamic work distribution: rank 0 hands tasks out one at a time to whichever
// rank asks next, so a slow class or a big dataset does not leave the other
// ranks idle. Rank 0 computes too, in a thread of its own, while its main
// thread serves the other ranks (only the main thread calls MPI).
//
// Protocol, per call (each call uses its own pair of tags, so a rank that has
// finished one phase and already asks for work of the next is not mistaken
// for a rank of the current phase):
//   worker -> 0  request: [int64 index of the finished task or -1][double seconds][result bytes]
//   0 -> worker  assign:  [int64 index of the next task, or -1 = no more tasks]
// Rank 0 answers -1 only when every task has been handed out; a worker that got
// -1 has delivered all its results, so when every worker got -1 and rank 0's
// own thread finished, every result is on rank 0.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "dist/mpi.h"

namespace winclip::dist {

struct TaskResult {
    std::string payload;  // what the task function returned
    int rank = -1;        // who ran it
    double seconds = 0;   // how long it took there
};

// Called on rank 0's main thread once per finished task: how many tasks are
// done (this one included), how many there are, and which one finished.
using ProgressFn = std::function<void(size_t done, size_t n, size_t finished)>;

// Runs `task(i)` for i in [0, n), each exactly once, on whichever rank asks
// first. Tasks are handed out in index order, so callers put expensive tasks
// first. Every rank must call this with the same n. Returns every result,
// indexed by task, on rank 0, and an empty vector elsewhere. An exception
// escaping `task` is a bug: it is logged and the job is aborted.
std::vector<TaskResult> run_tasks(const Session& session, size_t n,
                                  const std::function<std::string(size_t)>& task,
                                  const ProgressFn& progress = {});

}  // namespace winclip::dist
