// A thin checked layer over the HDF5 C API. Every call that can fail goes
// through a wrapper that throws IoError naming the file, the object path and
// HDF5's own error text. Datasets are read into core Arrays with conversion
// from whatever numeric type is stored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/array.h"

namespace winclip::io {

// "1.10.8"
std::string hdf5_version();

class H5File {
public:
    enum class Mode {
        kRead,       // existing file, read only
        kReadWrite,  // existing file, read and write
        kTruncate,   // create or overwrite
    };

    H5File(const std::string& path, Mode mode);
    ~H5File();
    H5File(const H5File&) = delete;
    H5File& operator=(const H5File&) = delete;
    H5File(H5File&& other) noexcept;
    H5File& operator=(H5File&& other) noexcept;

    const std::string& path() const { return path_; }
    // Flushes and closes; later calls throw. Errors on close are reported.
    void close();

    // True if a dataset or group exists at this path ("a/b/c"); intermediate
    // groups that do not exist make it false, not an error.
    bool exists(const std::string& object) const;
    bool is_group(const std::string& object) const;
    // Names of the direct children of a group, sorted.
    std::vector<std::string> list(const std::string& group = "/") const;
    std::vector<int64_t> shape(const std::string& dataset) const;

    // Readers convert any stored numeric type to the requested one.
    FloatArray read_float(const std::string& dataset) const;
    DoubleArray read_double(const std::string& dataset) const;
    Int64Array read_int64(const std::string& dataset) const;
    // Variable- or fixed-length strings, any rank (flattened).
    std::vector<std::string> read_strings(const std::string& dataset) const;

    // Writers create intermediate groups and replace an existing dataset.
    // `compress` applies deflate level 4 with chunking (for large maps).
    void write(const std::string& dataset, const FloatArray& a, bool compress = false);
    void write(const std::string& dataset, const DoubleArray& a, bool compress = false);
    void write(const std::string& dataset, const Int64Array& a, bool compress = false);
    void write_int32(const std::string& dataset, const Array<int32_t>& a);
    // Masks and other 8-bit data; read back by the numeric readers.
    void write(const std::string& dataset, const Array<uint8_t>& a, bool compress = false);
    // Stored as float16 (IEEE half), read back by read_float.
    void write_half(const std::string& dataset, const FloatArray& a, bool compress = false);
    void write_strings(const std::string& dataset, const std::vector<std::string>& values);
    void create_group(const std::string& group);
    // A soft link `name` -> `target` (an absolute path in this file), so one
    // dataset or group can be read under a second name without a copy.
    void link(const std::string& name, const std::string& target);

    // Attributes on a group or dataset ("/" for the root).
    bool has_attribute(const std::string& object, const std::string& name) const;
    std::string read_attribute_string(const std::string& object, const std::string& name) const;
    double read_attribute_double(const std::string& object, const std::string& name) const;
    void write_attribute(const std::string& object, const std::string& name, const std::string& value);
    void write_attribute(const std::string& object, const std::string& name, double value);
    void write_attribute(const std::string& object, const std::string& name, int64_t value);

private:
    std::string path_;
    int64_t id_ = -1;  // hid_t
};

}  // namespace winclip::io
