#include "dist/mpi.h"

#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/context.h"
#include "core/error.h"
#include "core/log.h"

namespace winclip::dist {
namespace {

int g_threads = 0;  // 0 until a Session computed it

// Sleeps between polls: short at first, longer while nothing happens, never
// above 5 ms so hand-offs stay quick.
class Backoff {
  public:
    void wait() {
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
        delay_us_ = std::min(delay_us_ * 2, 5000);
    }

  private:
    int delay_us_ = 50;
};

void wait_polling(MPI_Request* request, MPI_Status* status, const char* what) {
    Backoff backoff;
    for (;;) {
        int done = 0;
        check_mpi(MPI_Test(request, &done, status), what);
        if (done) return;
        backoff.wait();
    }
}

// Fractional core count described in threads_for_this_rank().
int compute_threads(MPI_Comm local, int local_size) {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0) return available_cores();
    std::vector<cpu_set_t> all(static_cast<size_t>(local_size));
    check_mpi(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, local),
              "MPI_Allgather(affinity)");
    double share = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &mine)) continue;
        int owners = 0;
        for (const auto& set : all) owners += CPU_ISSET(cpu, &set) ? 1 : 0;
        share += 1.0 / std::max(owners, 1);
    }
    return std::max(1, static_cast<int>(share + 1e-9));
}

}  // namespace

void check_mpi(int code, const char* what) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {0};
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw CommunicationError(std::string(what) + " failed: " + std::string(text, length));
}

Session::Session() {
    int initialised = 0;
    check_mpi(MPI_Initialized(&initialised), "MPI_Initialized");
    if (!initialised) {
        int provided = 0;
        check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided),
                  "MPI_Init_thread");
        if (provided < MPI_THREAD_FUNNELED) {
            throw CommunicationError("the MPI library does not provide MPI_THREAD_FUNNELED");
        }
        initialised_here_ = true;
    }
    // Errors come back as codes and become exceptions instead of killing the job.
    check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
              "MPI_Comm_set_errhandler");
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    log::set_rank(rank_);

    auto* local = new MPI_Comm(MPI_COMM_NULL);
    local_comm_ = local;
    check_mpi(
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, local),
        "MPI_Comm_split_type");
    check_mpi(MPI_Comm_rank(*local, &local_rank_), "MPI_Comm_rank(node)");
    check_mpi(MPI_Comm_size(*local, &local_size_), "MPI_Comm_size(node)");

    char host[MPI_MAX_PROCESSOR_NAME] = {0};
    int length = 0;
    check_mpi(MPI_Get_processor_name(host, &length), "MPI_Get_processor_name");
    std::vector<char> all(static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME);
    check_mpi(MPI_Allgather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(),
                            MPI_MAX_PROCESSOR_NAME, MPI_CHAR, MPI_COMM_WORLD),
              "MPI_Allgather(hosts)");
    for (int r = 0; r < size_; ++r)
        hosts_.emplace_back(&all[static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME]);

    threads_ = compute_threads(*local, local_size_);
    // The pipeline sizes LibTorch's thread pool from WINCLIP_THREADS when it
    // loads its first model; a value the user set wins.
    const char* user = std::getenv("WINCLIP_THREADS");
    if (user && std::atoi(user) > 0) threads_ = std::atoi(user);
    ::setenv("WINCLIP_THREADS", std::to_string(threads_).c_str(), /*overwrite=*/0);
    g_threads = threads_;
    apply_thread_count();
    // The pipeline picks this rank's GPU from it (method::node_local_rank()).
    ::setenv("WINCLIP_LOCAL_RANK", std::to_string(local_rank_).c_str(), /*overwrite=*/1);
}

Session::~Session() {
    auto* local = static_cast<MPI_Comm*>(local_comm_);
    if (local && *local != MPI_COMM_NULL) MPI_Comm_free(local);
    delete local;
    if (initialised_here_) MPI_Finalize();
}

void Session::barrier() const {
    // A polled barrier: MPI_Barrier would busy-wait and steal the core of a
    // rank that is still computing.
    MPI_Request request;
    check_mpi(MPI_Ibarrier(MPI_COMM_WORLD, &request), "MPI_Ibarrier");
    wait_polling(&request, MPI_STATUS_IGNORE, "MPI_Ibarrier");
}

void Session::broadcast(std::string& value, int root) const {
    uint64_t size = value.size();
    MPI_Request request;
    check_mpi(MPI_Ibcast(&size, 1, MPI_UINT64_T, root, MPI_COMM_WORLD, &request), "MPI_Ibcast");
    wait_polling(&request, MPI_STATUS_IGNORE, "MPI_Ibcast(size)");
    value.resize(size);
    if (size == 0) return;
    check_mpi(
        MPI_Ibcast(value.data(), static_cast<int>(size), MPI_BYTE, root, MPI_COMM_WORLD, &request),
        "MPI_Ibcast");
    wait_polling(&request, MPI_STATUS_IGNORE, "MPI_Ibcast(bytes)");
}

std::vector<std::string> Session::gather(const std::string& value) const {
    std::vector<std::string> out;
    const int kTag = 7001;
    if (rank_ != 0) {
        send_bytes(value, 0, kTag);
        return out;
    }
    out.resize(static_cast<size_t>(size_));
    out[0] = value;
    for (int r = 1; r < size_; ++r) out[static_cast<size_t>(r)] = receive_bytes(r, kTag);
    return out;
}

void Session::abort(int code) const {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
}

std::string mpi_version() {
    char text[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    int length = 0;
    if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "unknown";
    std::string s(text, static_cast<size_t>(length));
    const auto end = s.find_first_of(",\n");
    return end == std::string::npos ? s : s.substr(0, end);
}

int threads_for_this_rank() { return g_threads > 0 ? g_threads : available_cores(); }

void apply_thread_count() { omp_set_num_threads(threads_for_this_rank()); }

void send_bytes(const std::string& bytes, int dest, int tag) {
    WINCLIP_CHECK(bytes.size() < static_cast<size_t>(INT32_MAX));
    MPI_Request request;
    check_mpi(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, tag,
                        MPI_COMM_WORLD, &request),
              "MPI_Isend");
    wait_polling(&request, MPI_STATUS_IGNORE, "MPI_Isend");
}

std::string receive_bytes(int source, int tag, int* actual_source) {
    // Probe first (polled) to learn the size, then receive exactly that message.
    MPI_Status status;
    Backoff backoff;
    for (;;) {
        int flag = 0;
        check_mpi(MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, &status), "MPI_Iprobe");
        if (flag) break;
        backoff.wait();
    }
    int count = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
    std::string bytes(static_cast<size_t>(count), '\0');
    check_mpi(MPI_Recv(bytes.data(), count, MPI_BYTE, status.MPI_SOURCE, tag, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
    if (actual_source) *actual_source = status.MPI_SOURCE;
    return bytes;
}

bool message_waiting(int tag, int* source) {
    MPI_Status status;
    int flag = 0;
    check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &status), "MPI_Iprobe");
    if (flag && source) *source = status.MPI_SOURCE;
    return flag != 0;
}

}  // namespace winclip::dist
