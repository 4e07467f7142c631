// Little-endian byte buffers for metric states. Internal to metrics/.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "metric state serialisation assumes a little-endian host"
#endif

namespace winclip::metrics::detail {

class ByteWriter {
public:
    explicit ByteWriter(std::vector<uint8_t>& out) : out_(out) {}
    template <typename T>
    void put(T value) {
        append(&value, sizeof(T));
    }
    template <typename T>
    void put_vector(const std::vector<T>& values) {
        put<uint64_t>(values.size());
        append(values.data(), values.size() * sizeof(T));
    }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        append(s.data(), s.size());
    }
    void append(const void* data, size_t size) {
        if (size == 0) return;
        const size_t old_size = out_.size();
        out_.resize(old_size + size);
        std::memcpy(out_.data() + old_size, data, size);
    }

private:
    std::vector<uint8_t>& out_;
};

class ByteReader {
public:
    ByteReader(const uint8_t* data, size_t size, const char* what)
        : data_(data), size_(size), what_(what) {}

    template <typename T>
    T get() {
        T value;
        take(&value, sizeof(T));
        return value;
    }
    template <typename T>
    std::vector<T> get_vector() {
        const uint64_t count = get<uint64_t>();
        if (count > (size_ - pos_) / sizeof(T)) fail("array length exceeds the buffer");
        std::vector<T> values(count);
        take(values.data(), count * sizeof(T));
        return values;
    }
    std::string get_string() {
        const uint64_t count = get<uint64_t>();
        if (count > size_ - pos_) fail("string length exceeds the buffer");
        std::string s(reinterpret_cast<const char*>(data_ + pos_), count);
        pos_ += count;
        return s;
    }
    // Pointer to the next `count` bytes, which are skipped.
    const uint8_t* take_span(uint64_t count) {
        if (count > size_ - pos_) fail("length exceeds the buffer");
        const uint8_t* p = data_ + pos_;
        pos_ += count;
        return p;
    }
    void expect_magic(const char (&magic)[9]) {
        char found[8];
        take(found, 8);
        if (std::memcmp(found, magic, 8) != 0) {
            fail(std::string("expected header '") + magic + "'");
        }
    }
    size_t position() const { return pos_; }
    bool at_end() const { return pos_ == size_; }
    [[noreturn]] void fail(const std::string& why) const {
        throw IoError(std::string("malformed ") + what_ + " bytes at offset " +
                      std::to_string(pos_) + " of " + std::to_string(size_) + ": " + why);
    }

private:
    void take(void* dst, size_t size) {
        if (size > size_ - pos_) fail("unexpected end of buffer");
        if (size) std::memcpy(dst, data_ + pos_, size);
        pos_ += size;
    }

    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
    const char* what_;
};

}  // namespace winclip::metrics::detail
