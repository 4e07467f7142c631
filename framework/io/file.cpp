#include "io/file.h"

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/sha256.h"

namespace winclip::io {

std::vector<uint8_t> read_file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("cannot open file " + path);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    if (in.bad()) throw IoError("error while reading file " + path);
    return bytes;
}

std::string file_sha256(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("cannot open file " + path);
    Sha256 hash;
    std::vector<char> block(1 << 20);
    while (in) {
        in.read(block.data(), static_cast<std::streamsize>(block.size()));
        const auto got = in.gcount();
        if (got > 0) hash.update(block.data(), static_cast<size_t>(got));
    }
    if (in.bad()) throw IoError("error while reading file " + path);
    return hash.hex_digest();
}

}  // namespace winclip::io
