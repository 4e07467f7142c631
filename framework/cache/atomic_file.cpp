#include "cache/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace winclip::cache {
namespace fs = std::filesystem;
namespace {

void fsync_path(const std::string& path, bool directory) {
    const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) throw IoError("cannot open " + path + " to sync it: " + std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) throw IoError("cannot sync " + path + ": " + std::strerror(err));
}

std::atomic<unsigned> g_counter{0};

}  // namespace

bool is_temporary_name(const std::string& file_name) { return file_name.rfind(".tmp-", 0) == 0; }

void publish_file(const std::string& path, const std::function<void(const std::string&)>& write) {
    const fs::path final_path(path);
    fs::path folder = final_path.parent_path();
    if (folder.empty()) folder = ".";
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw IoError("cannot create folder " + folder.string() + ": " + ec.message());
    // pid + counter keep concurrent writers (ranks, threads) apart.
    const std::string temp =
        (folder / (".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(g_counter++) + "-" +
                   final_path.filename().string()))
            .string();
    try {
        write(temp);
        fsync_path(temp, false);
    } catch (...) {
        std::remove(temp.c_str());
        throw;
    }
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(temp.c_str());
        throw IoError("cannot publish " + path + ": " + why);
    }
    fsync_path(folder.string(), true);
}

void publish_text(const std::string& path, const std::string& text) {
    publish_file(path, [&](const std::string& temp) {
        std::ofstream out(temp, std::ios::binary);
        out << text;
        out.flush();
        if (!out) throw IoError("cannot write " + temp);
    });
}

}  // namespace winclip::cache
