// The dynamic work queue with a trivial payload, under whatever number of
// ranks ctest starts it with: every task runs exactly once, its result reaches
// rank 0 at its index, and consecutive calls do not mix their messages.
#include "dist/work_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "dist/mpi.h"

namespace winclip::dist {
namespace {

Session& session() {
    static Session s;
    return s;
}

TEST(WorkQueue, EveryTaskRunsOnceAndResultsArriveInIndexOrder) {
    auto& s = session();
    const size_t n = 60;
    size_t progress_calls = 0;
    std::set<size_t> reported;
    const auto results = run_tasks(
        s, n,
        [&](size_t i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            return std::to_string(i * i) + "@" + std::to_string(s.rank());
        },
        [&](size_t done, size_t total, size_t finished) {
            EXPECT_LE(done, total);
            EXPECT_LT(finished, total);
            EXPECT_TRUE(reported.insert(finished).second) << "task " << finished << " twice";
            ++progress_calls;
            EXPECT_EQ(done, progress_calls);
        });
    if (s.rank() != 0) {
        EXPECT_TRUE(results.empty());
        return;
    }
    ASSERT_EQ(results.size(), n);
    std::set<int> ranks;
    for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(results[i].payload,
                  std::to_string(i * i) + "@" + std::to_string(results[i].rank));
        EXPECT_GE(results[i].rank, 0);
        EXPECT_LT(results[i].rank, s.size());
        ranks.insert(results[i].rank);
    }
    // Every task is reported exactly once, as it finishes.
    EXPECT_EQ(progress_calls, n);
    // With 5 ms tasks every rank gets work (rank 0 included).
    EXPECT_EQ(static_cast<int>(ranks.size()), s.size());
}

TEST(WorkQueue, BackToBackPhasesAndEmptyPhases) {
    auto& s = session();
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}}) {
        const auto results = run_tasks(s, n, [&](size_t i) { return std::string(i + 1, 'x'); });
        if (s.rank() == 0) {
            ASSERT_EQ(results.size(), n);
            for (size_t i = 0; i < n; ++i) EXPECT_EQ(results[i].payload.size(), i + 1);
        }
    }
}

TEST(Session, BroadcastGatherAndThreads) {
    auto& s = session();
    std::string value = s.rank() == 0 ? std::string(100000, 'a') : "";
    s.broadcast(value);
    EXPECT_EQ(value.size(), 100000u);
    const auto all = s.gather("rank" + std::to_string(s.rank()));
    if (s.rank() == 0) {
        ASSERT_EQ(static_cast<int>(all.size()), s.size());
        for (int r = 0; r < s.size(); ++r)
            EXPECT_EQ(all[static_cast<size_t>(r)], "rank" + std::to_string(r));
    }
    EXPECT_GE(threads_for_this_rank(), 1);
    EXPECT_EQ(static_cast<int>(s.hosts().size()), s.size());
    EXPECT_LT(s.local_rank(), s.local_size());
    EXPECT_FALSE(mpi_version().empty());
}

}  // namespace
}  // namespace winclip::dist
