#include "dist/work_queue.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace winclip::dist {
namespace {

constexpr int kBaseTag = 100;

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string encode_request(int64_t index, double seconds, const std::string& payload) {
    std::string m(sizeof index + sizeof seconds, '\0');
    std::memcpy(m.data(), &index, sizeof index);
    std::memcpy(m.data() + sizeof index, &seconds, sizeof seconds);
    return m + payload;
}

void decode_request(const std::string& m, int64_t* index, double* seconds, std::string* payload) {
    WINCLIP_CHECK(m.size() >= sizeof *index + sizeof *seconds);
    std::memcpy(index, m.data(), sizeof *index);
    std::memcpy(seconds, m.data() + sizeof *index, sizeof *seconds);
    *payload = m.substr(sizeof *index + sizeof *seconds);
}

std::string encode_index(int64_t index) {
    std::string m(sizeof index, '\0');
    std::memcpy(m.data(), &index, sizeof index);
    return m;
}

int64_t decode_index(const std::string& m) {
    WINCLIP_CHECK(m.size() == sizeof(int64_t));
    int64_t index = 0;
    std::memcpy(&index, m.data(), sizeof index);
    return index;
}

// A task function that throws is a bug in the engine (input errors are caught
// inside tasks and become failed records), so the whole job stops.
std::string run_guarded(const Session& session, const std::function<std::string(size_t)>& task,
                        size_t i) {
    try {
        return task(i);
    } catch (const std::exception& e) {
        log::error("dist", "task {} raised an unexpected error, aborting the job: {}", i, e.what());
        session.abort(3);
    }
}

}  // namespace

std::vector<TaskResult> run_tasks(const Session& session, size_t n,
                                  const std::function<std::string(size_t)>& task,
                                  const ProgressFn& progress) {
    // Every rank calls run_tasks the same number of times, so the counter, and
    // with it the tag pair, agrees across ranks.
    static int call_counter = 0;
    const int request_tag = kBaseTag + 2 * call_counter;
    const int assign_tag = request_tag + 1;
    ++call_counter;

    // --- Worker ranks: ask, compute, report with the next request.
    if (session.rank() != 0) {
        int64_t finished = -1;
        double seconds = 0;
        std::string payload;
        for (;;) {
            send_bytes(encode_request(finished, seconds, payload), 0, request_tag);
            const int64_t next = decode_index(receive_bytes(0, assign_tag));
            if (next < 0) break;
            const auto t0 = std::chrono::steady_clock::now();
            payload = run_guarded(session, task, static_cast<size_t>(next));
            seconds = seconds_since(t0);
            finished = next;
        }
        return {};
    }

    // --- Rank 0: a compute thread takes tasks from the same counter the
    // main thread hands out to the others.
    std::vector<TaskResult> results(n);
    std::mutex mutex;
    size_t next_task = 0;
    std::vector<size_t> finished_order;  // task indices as they finish, for `progress`

    auto take = [&]() -> int64_t {
        std::lock_guard<std::mutex> lock(mutex);
        if (next_task >= n) return -1;
        return static_cast<int64_t>(next_task++);
    };

    std::atomic<bool> local_finished{false};
    std::thread local([&] {
        apply_thread_count();
        for (int64_t i = take(); i >= 0; i = take()) {
            const auto t0 = std::chrono::steady_clock::now();
            std::string payload = run_guarded(session, task, static_cast<size_t>(i));
            const double seconds = seconds_since(t0);
            {
                std::lock_guard<std::mutex> lock(mutex);
                results[static_cast<size_t>(i)] = {std::move(payload), 0, seconds};
                finished_order.push_back(static_cast<size_t>(i));
            }
        }
        local_finished = true;
    });

    int stopped = 0;
    size_t reported = 0;
    auto report = [&] {
        std::vector<size_t> fresh;
        {
            std::lock_guard<std::mutex> lock(mutex);
            fresh.assign(finished_order.begin() + static_cast<long>(reported),
                         finished_order.end());
        }
        for (size_t task : fresh) {
            ++reported;
            if (progress) progress(reported, n, task);
        }
    };
    try {
        while (stopped < session.size() - 1 || !local_finished) {
            int source = -1;
            if (session.size() > 1 && message_waiting(request_tag, &source)) {
                int64_t finished = -1;
                double seconds = 0;
                std::string payload;
                decode_request(receive_bytes(source, request_tag), &finished, &seconds, &payload);
                if (finished >= 0) {
                    WINCLIP_CHECK(static_cast<size_t>(finished) < n);
                    std::lock_guard<std::mutex> lock(mutex);
                    results[static_cast<size_t>(finished)] = {std::move(payload), source, seconds};
                    finished_order.push_back(static_cast<size_t>(finished));
                }
                const int64_t next = take();
                send_bytes(encode_index(next), source, assign_tag);
                if (next < 0) ++stopped;
                report();
                continue;
            }
            report();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    } catch (const std::exception& e) {
        log::error("dist", "rank 0 lost contact with the other ranks: {}", e.what());
        session.abort(4);
    }
    local.join();
    report();
    return results;
}

}  // namespace winclip::dist
