#include "io/hdf5.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "core/error.h"

namespace winclip::io {
namespace {

// Collects HDF5's own error stack into one line, so the exception carries it.
herr_t collect_error(unsigned n, const H5E_error2_t* err, void* client) {
    auto* out = static_cast<std::string*>(client);
    if (n < 3 && err && err->desc) {
        if (!out->empty()) *out += "; ";
        *out += err->desc;
    }
    return 0;
}

std::string hdf5_error_text() {
    std::string text;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &text);
    H5Eclear2(H5E_DEFAULT);
    return text.empty() ? "no HDF5 error detail" : text;
}

[[noreturn]] void fail(const std::string& path, const std::string& object, const std::string& what) {
    throw IoError("HDF5: " + what + " '" + object + "' in " + path + " (" + hdf5_error_text() + ")");
}

// Checks a returned id/status; throws naming the file and object on failure.
hid_t checked(hid_t id, const std::string& path, const std::string& object, const char* what) {
    if (id < 0) fail(path, object, what);
    return id;
}

// Closes an HDF5 handle when it goes out of scope.
class Handle {
public:
    Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
    ~Handle() {
        if (id_ >= 0) closer_(id_);
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    hid_t get() const { return id_; }

private:
    hid_t id_;
    herr_t (*closer_)(hid_t);
};

struct SilenceAutoPrint {
    SilenceAutoPrint() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const SilenceAutoPrint kSilence;

std::string parent_of(const std::string& object) {
    const auto pos = object.find_last_of('/');
    if (pos == std::string::npos || pos == 0) return "/";
    return object.substr(0, pos);
}

template <typename T>
hid_t native_type();
template <>
hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <>
hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }
template <>
hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <>
hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <>
hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }

}  // namespace

std::string hdf5_version() {
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

H5File::H5File(const std::string& path, Mode mode) : path_(path) {
    switch (mode) {
        case Mode::kRead: id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); break;
        case Mode::kReadWrite: id_ = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT); break;
        case Mode::kTruncate:
            id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
            break;
    }
    if (id_ < 0) {
        throw IoError("HDF5: cannot " + std::string(mode == Mode::kTruncate ? "create" : "open") +
                      " " + path + " (" + hdf5_error_text() + ")");
    }
}

H5File::~H5File() {
    if (id_ >= 0) H5Fclose(id_);
}

H5File::H5File(H5File&& other) noexcept
    : path_(std::move(other.path_)), id_(std::exchange(other.id_, -1)) {}

H5File& H5File::operator=(H5File&& other) noexcept {
    if (this != &other) {
        if (id_ >= 0) H5Fclose(id_);
        path_ = std::move(other.path_);
        id_ = std::exchange(other.id_, -1);
    }
    return *this;
}

void H5File::close() {
    if (id_ < 0) return;
    const hid_t id = std::exchange(id_, -1);
    if (H5Fflush(id, H5F_SCOPE_LOCAL) < 0 || H5Fclose(id) < 0) fail(path_, "/", "cannot close");
}

bool H5File::exists(const std::string& object) const {
    WINCLIP_CHECK(id_ >= 0);
    if (object == "/" || object.empty()) return true;
    // Walk the path so a missing intermediate group answers false.
    std::string prefix;
    size_t start = object[0] == '/' ? 1 : 0;
    while (start <= object.size()) {
        const size_t end = std::min(object.find('/', start), object.size());
        prefix += "/" + object.substr(start, end - start);
        const htri_t e = H5Lexists(id_, prefix.c_str(), H5P_DEFAULT);
        if (e <= 0) {
            H5Eclear2(H5E_DEFAULT);
            return false;
        }
        start = end + 1;
    }
    return true;
}

bool H5File::is_group(const std::string& object) const {
    if (!exists(object)) return false;
    H5O_info_t info;
    if (H5Oget_info_by_name(id_, object.c_str(), &info, H5P_DEFAULT) < 0)
        fail(path_, object, "cannot inspect");
    return info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> H5File::list(const std::string& group) const {
    Handle g(checked(H5Gopen2(id_, group.c_str(), H5P_DEFAULT), path_, group, "cannot open group"),
             H5Gclose);
    H5G_info_t info;
    if (H5Gget_info(g.get(), &info) < 0) fail(path_, group, "cannot list group");
    std::vector<std::string> names;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
        const ssize_t n = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr,
                                             0, H5P_DEFAULT);
        if (n < 0) fail(path_, group, "cannot list group");
        std::string name(static_cast<size_t>(n), '\0');
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), n + 1,
                           H5P_DEFAULT);
        names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::vector<int64_t> H5File::shape(const std::string& dataset) const {
    if (!exists(dataset)) throw IoError("HDF5: no dataset '" + dataset + "' in " + path_);
    Handle d(checked(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT), path_, dataset,
                     "cannot open dataset"),
             H5Dclose);
    Handle space(checked(H5Dget_space(d.get()), path_, dataset, "cannot read dataspace"),
                 H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) fail(path_, dataset, "cannot read rank of");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    return std::vector<int64_t>(dims.begin(), dims.end());
}

namespace {

// Datasets claiming more than this are checked against the bytes the file
// really stores before any memory is reserved for them.
constexpr uint64_t kPlausibilityCheckBytes = uint64_t{256} << 20;
// Deflate cannot expand data by more than about 1032:1, so a dataset whose
// claimed size exceeds its stored bytes by more than this is not data but a
// header: chunks never written (fill values) or a forged dataspace.
constexpr uint64_t kMaxExpansion = 1100;

// The number of elements of `shape`, or an IoError when the product overflows
// (HDF5 accepts dimensions up to 2^64 - 1, so a tiny file can claim a shape
// whose element count wraps around to a small number) or when the file cannot
// possibly hold that many bytes. Callers allocate only after this check.
size_t checked_element_count(hid_t dataset_id, const std::string& path, const std::string& dataset,
                             const std::vector<int64_t>& shape, size_t element_bytes) {
    uint64_t count = 1;
    for (const int64_t d : shape) {
        if (d < 0 || (d > 0 && count > (std::numeric_limits<uint64_t>::max() / element_bytes) /
                                           static_cast<uint64_t>(d))) {
            throw IoError("HDF5: dataset '" + dataset + "' in " + path + " claims shape " +
                          shape_string(shape) + ", too large to address");
        }
        count *= static_cast<uint64_t>(d);
    }
    const uint64_t bytes = count * element_bytes;
    if (bytes > kPlausibilityCheckBytes) {
        const uint64_t stored = H5Dget_storage_size(dataset_id);
        if (stored == 0 || bytes / stored > kMaxExpansion) {
            throw IoError("HDF5: dataset '" + dataset + "' in " + path + " claims shape " +
                          shape_string(shape) + " (" + std::to_string(bytes) +
                          " bytes) but the file stores only " + std::to_string(stored) +
                          " bytes of it");
        }
    }
    if (count > std::numeric_limits<size_t>::max() / element_bytes) {
        throw IoError("HDF5: dataset '" + dataset + "' in " + path + " claims shape " +
                      shape_string(shape) + ", too large for this machine");
    }
    return static_cast<size_t>(count);
}

template <typename T>
Array<T> read_numeric(hid_t file, const std::string& path, const std::string& dataset,
                      const std::vector<int64_t>& shape) {
    Handle d(checked(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), path, dataset,
                     "cannot open dataset"),
             H5Dclose);
    Handle type(checked(H5Dget_type(d.get()), path, dataset, "cannot read type of"), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        throw IoError("HDF5: dataset '" + dataset + "' in " + path +
                      " is not numeric (expected integer or float data)");
    }
    const size_t count = checked_element_count(d.get(), path, dataset, shape, sizeof(T));
    Array<T> out;
    try {
        out.values.resize(count);
    } catch (const std::bad_alloc&) {
        throw IoError("HDF5: dataset '" + dataset + "' in " + path + " of shape " +
                      shape_string(shape) + " does not fit in memory");
    }
    out.shape = shape;
    if (out.numel() > 0 &&
        H5Dread(d.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
        fail(path, dataset, "cannot read dataset");
    }
    return out;
}

}  // namespace

FloatArray H5File::read_float(const std::string& dataset) const {
    return read_numeric<float>(id_, path_, dataset, shape(dataset));
}
DoubleArray H5File::read_double(const std::string& dataset) const {
    return read_numeric<double>(id_, path_, dataset, shape(dataset));
}
Int64Array H5File::read_int64(const std::string& dataset) const {
    return read_numeric<int64_t>(id_, path_, dataset, shape(dataset));
}

std::vector<std::string> H5File::read_strings(const std::string& dataset) const {
    const auto dims = shape(dataset);
    Handle d(checked(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT), path_, dataset,
                     "cannot open dataset"),
             H5Dclose);
    Handle type(checked(H5Dget_type(d.get()), path_, dataset, "cannot read type of"), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING)
        throw IoError("HDF5: dataset '" + dataset + "' in " + path_ + " does not hold strings");
    const size_t n = checked_element_count(d.get(), path_, dataset, dims,
                                           std::max<size_t>(H5Tget_size(type.get()), 1));
    std::vector<std::string> out(n);
    if (n == 0) return out;
    if (H5Tis_variable_str(type.get()) > 0) {
        Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(mem.get(), H5T_VARIABLE);
        H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
        std::vector<char*> raw(n, nullptr);
        if (H5Dread(d.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
            fail(path_, dataset, "cannot read strings from");
        for (size_t i = 0; i < n; ++i) out[i] = raw[i] ? raw[i] : "";
        Handle space(H5Dget_space(d.get()), H5Sclose);
        H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
    } else {
        const size_t width = H5Tget_size(type.get());
        std::vector<char> raw(n * width);
        if (H5Dread(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
            fail(path_, dataset, "cannot read strings from");
        for (size_t i = 0; i < n; ++i) {
            const char* s = raw.data() + i * width;
            out[i] = std::string(s, strnlen(s, width));
        }
    }
    return out;
}

void H5File::create_group(const std::string& group) {
    if (group == "/" || group.empty() || exists(group)) return;
    create_group(parent_of(group));
    Handle g(checked(H5Gcreate2(id_, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path_,
                     group, "cannot create group"),
             H5Gclose);
}

void H5File::link(const std::string& name, const std::string& target) {
    create_group(parent_of(name));
    if (H5Lexists(id_, name.c_str(), H5P_DEFAULT) > 0 && H5Ldelete(id_, name.c_str(), H5P_DEFAULT) < 0)
        fail(path_, name, "cannot replace link");
    H5Eclear2(H5E_DEFAULT);
    if (H5Lcreate_soft(target.c_str(), id_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0)
        fail(path_, name, "cannot create link to " + target + " as");
}

namespace {

// Creates (replacing) a dataset of the given file type and writes `data`
// given in memory type `mem_type`.
void write_dataset(hid_t file, const std::string& path, const std::string& name,
                   const std::vector<int64_t>& shape, hid_t file_type, hid_t mem_type,
                   const void* data, bool compress) {
    if (H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0) {
        if (H5Ldelete(file, name.c_str(), H5P_DEFAULT) < 0) fail(path, name, "cannot replace");
    }
    H5Eclear2(H5E_DEFAULT);
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    Handle space(checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                         path, name, "cannot create dataspace for"),
                 H5Sclose);
    Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    const bool any_empty = std::any_of(dims.begin(), dims.end(), [](hsize_t d) { return d == 0; });
    if (compress && !dims.empty() && !any_empty) {
        // Chunks of whole trailing rows, at most about 1 MiB each.
        std::vector<hsize_t> chunk = dims;
        const size_t element = H5Tget_size(file_type);
        size_t bytes = element;
        for (auto c : chunk) bytes *= c;
        for (size_t i = 0; i < chunk.size() && bytes > (1u << 20); ++i) {
            bytes /= chunk[i];
            chunk[i] = 1;
        }
        H5Pset_chunk(plist.get(), static_cast<int>(chunk.size()), chunk.data());
        H5Pset_deflate(plist.get(), 4);
    }
    Handle d(checked(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT,
                                plist.get(), H5P_DEFAULT),
                     path, name, "cannot create dataset"),
             H5Dclose);
    if (!any_empty && H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        fail(path, name, "cannot write dataset");
}

}  // namespace

void H5File::write(const std::string& dataset, const FloatArray& a, bool compress) {
    WINCLIP_CHECK(static_cast<int64_t>(a.values.size()) == a.numel());
    create_group(parent_of(dataset));
    write_dataset(id_, path_, dataset, a.shape, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, a.data(),
                  compress);
}
void H5File::write(const std::string& dataset, const DoubleArray& a, bool compress) {
    WINCLIP_CHECK(static_cast<int64_t>(a.values.size()) == a.numel());
    create_group(parent_of(dataset));
    write_dataset(id_, path_, dataset, a.shape, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, a.data(),
                  compress);
}
void H5File::write(const std::string& dataset, const Int64Array& a, bool compress) {
    WINCLIP_CHECK(static_cast<int64_t>(a.values.size()) == a.numel());
    create_group(parent_of(dataset));
    write_dataset(id_, path_, dataset, a.shape, H5T_STD_I64LE, H5T_NATIVE_INT64, a.data(),
                  compress);
}
void H5File::write(const std::string& dataset, const Array<uint8_t>& a, bool compress) {
    WINCLIP_CHECK(static_cast<int64_t>(a.values.size()) == a.numel());
    create_group(parent_of(dataset));
    write_dataset(id_, path_, dataset, a.shape, H5T_STD_U8LE, native_type<uint8_t>(), a.data(),
                  compress);
}
void H5File::write_int32(const std::string& dataset, const Array<int32_t>& a) {
    WINCLIP_CHECK(static_cast<int64_t>(a.values.size()) == a.numel());
    create_group(parent_of(dataset));
    write_dataset(id_, path_, dataset, a.shape, H5T_STD_I32LE, native_type<int32_t>(), a.data(),
                  false);
}

void H5File::write_half(const std::string& dataset, const FloatArray& a, bool compress) {
    WINCLIP_CHECK(static_cast<int64_t>(a.values.size()) == a.numel());
    create_group(parent_of(dataset));
    // An IEEE binary16 file type; HDF5 converts from float on write (round to nearest).
    Handle half(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
    H5Tset_fields(half.get(), 15, 10, 5, 0, 10);
    H5Tset_size(half.get(), 2);
    H5Tset_ebias(half.get(), 15);
    H5Tset_precision(half.get(), 16);
    write_dataset(id_, path_, dataset, a.shape, half.get(), H5T_NATIVE_FLOAT, a.data(), compress);
}

void H5File::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
    create_group(parent_of(dataset));
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    std::vector<const char*> raw;
    raw.reserve(values.size());
    for (const auto& v : values) raw.push_back(v.c_str());
    write_dataset(id_, path_, dataset, {static_cast<int64_t>(values.size())}, type.get(),
                  type.get(), raw.data(), false);
}

bool H5File::has_attribute(const std::string& object, const std::string& name) const {
    if (!exists(object)) return false;
    const htri_t e = H5Aexists_by_name(id_, object.c_str(), name.c_str(), H5P_DEFAULT);
    if (e < 0) fail(path_, object, "cannot inspect attributes of");
    return e > 0;
}

std::string H5File::read_attribute_string(const std::string& object,
                                          const std::string& name) const {
    Handle a(checked(H5Aopen_by_name(id_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                     path_, object + "@" + name, "no attribute"),
             H5Aclose);
    Handle type(H5Aget_type(a.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING)
        throw IoError("HDF5: attribute '" + name + "' of '" + object + "' in " + path_ +
                      " is not a string");
    if (H5Tis_variable_str(type.get()) > 0) {
        Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
        H5Tset_size(mem.get(), H5T_VARIABLE);
        H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
        char* raw = nullptr;
        if (H5Aread(a.get(), mem.get(), &raw) < 0) fail(path_, object + "@" + name, "cannot read");
        std::string out = raw ? raw : "";
        H5free_memory(raw);
        return out;
    }
    const size_t width = H5Tget_size(type.get());
    std::string out(width, '\0');
    if (H5Aread(a.get(), type.get(), out.data()) < 0) fail(path_, object + "@" + name, "cannot read");
    out.resize(strnlen(out.c_str(), width));
    return out;
}

double H5File::read_attribute_double(const std::string& object, const std::string& name) const {
    Handle a(checked(H5Aopen_by_name(id_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                     path_, object + "@" + name, "no attribute"),
             H5Aclose);
    double v = 0;
    if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0)
        fail(path_, object + "@" + name, "cannot read numeric attribute");
    return v;
}

namespace {

void write_attribute_raw(hid_t file, const std::string& path, const std::string& object,
                         const std::string& name, hid_t type, const void* value) {
    if (H5Aexists_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT) > 0)
        H5Adelete_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT);
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle a(checked(H5Acreate_by_name(file, object.c_str(), name.c_str(), type, space.get(),
                                       H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     path, object + "@" + name, "cannot create attribute"),
             H5Aclose);
    if (H5Awrite(a.get(), type, value) < 0) fail(path, object + "@" + name, "cannot write");
}

}  // namespace

void H5File::write_attribute(const std::string& object, const std::string& name,
                             const std::string& value) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    const char* raw = value.c_str();
    write_attribute_raw(id_, path_, object, name, type.get(), &raw);
}
void H5File::write_attribute(const std::string& object, const std::string& name, double value) {
    write_attribute_raw(id_, path_, object, name, H5T_NATIVE_DOUBLE, &value);
}
void H5File::write_attribute(const std::string& object, const std::string& name, int64_t value) {
    write_attribute_raw(id_, path_, object, name, H5T_NATIVE_INT64, &value);
}

}  // namespace winclip::io
