// The MPI session of one process and the few checked calls the engine needs.
// Every MPI call goes through a wrapper that throws CommunicationError with
// MPI's own error text. A process started without mpirun runs as a singleton
// (rank 0 of 1), so the same code path serves laptops and clusters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace winclip::dist {

class Session {
  public:
    // Initialises MPI (thread level FUNNELED: only the main thread calls MPI)
    // unless it is already initialised, splits off the node-local communicator,
    // gathers host names and works out this rank's thread count. Sets the
    // logger's rank.
    Session();
    // Finalises MPI if this object initialised it.
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }
    // Rank among the ranks of this node (MPI_COMM_TYPE_SHARED); picks the GPU
    // on nodes with several. The Session exports it as WINCLIP_LOCAL_RANK.
    int local_rank() const { return local_rank_; }
    int local_size() const { return local_size_; }
    // Host name of every rank, indexed by rank.
    const std::vector<std::string>& hosts() const { return hosts_; }
    // Intra-op threads this rank should use (see threads_for_this_rank()).
    int threads() const { return threads_; }

    void barrier() const;
    // Rank `root`'s string reaches every rank.
    void broadcast(std::string& value, int root = 0) const;
    // Every rank's string, on rank 0 only (empty elsewhere), indexed by rank.
    std::vector<std::string> gather(const std::string& value) const;
    // Ends every rank of the job; for bugs and unrecoverable states only.
    [[noreturn]] void abort(int code) const;

  private:
    bool initialised_here_ = false;
    int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, threads_ = 1;
    std::vector<std::string> hosts_;
    void* local_comm_ = nullptr;  // MPI_Comm, kept opaque so mpi.h stays out of callers
};

// "Open MPI v4.1.4, ..." (the first line MPI_Get_library_version reports).
std::string mpi_version();

// Threads for this rank: the cores in its affinity mask, each shared core
// counted fractionally by how many ranks of this node may run on it, rounded
// down, at least 1. Two ranks bound to one core each get 1 thread each; two
// unbound ranks on a 2-core node also get 1 each rather than 2 + 2. Valid
// after a Session exists; before that (or in a lone process without MPI), the
// cores available to the process. A positive WINCLIP_THREADS set by the user
// wins. The Session exports the value as WINCLIP_THREADS, which the pipeline
// passes to torch::set_num_threads when it loads its first model.
int threads_for_this_rank();

// Applies threads_for_this_rank() to OpenMP in the calling thread (LibTorch's
// and OpenBLAS's parallel regions read the calling thread's setting), so a
// freshly started compute thread does not fall back to one thread per core.
void apply_thread_count();

// Checked point-to-point transfer of byte strings. Waits poll with short
// sleeps instead of MPI's busy loop, so an idle rank leaves its core to the
// ranks that compute (this matters when ranks share cores).
void send_bytes(const std::string& bytes, int dest, int tag);
std::string receive_bytes(int source, int tag, int* actual_source = nullptr);
// Non-blocking check for a message with `tag` from any rank.
bool message_waiting(int tag, int* source);

// Throws CommunicationError naming `what` when `code` is not MPI_SUCCESS.
void check_mpi(int code, const char* what);

}  // namespace winclip::dist
