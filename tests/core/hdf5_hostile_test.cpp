// H5File against files whose headers lie: a few hundred bytes of HDF5 can
// declare a dataset of any shape, including shapes whose element count wraps
// around 64 bits. Reading one must be an IoError naming the file and dataset,
// never an allocation failure, an out-of-bounds write or a huge allocation.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/hdf5.h"

namespace winclip::io {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / "winclip_hdf5_hostile_test";
    fs::create_directories(dir);
    return (dir / name).string();
}

// Declares float datasets "maps" (and a string dataset "paths" of the same
// shape) with chunked storage and writes no chunk: the file stays a few
// kilobytes whatever the shape says.
void write_header_only(const std::string& path, const std::vector<hsize_t>& dims) {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    const std::vector<hsize_t> chunk(dims.size(), 1);
    H5Pset_chunk(plist, static_cast<int>(chunk.size()), chunk.data());
    const hid_t maps =
        H5Dcreate2(file, "maps", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    const hid_t text = H5Tcopy(H5T_C_S1);
    H5Tset_size(text, 16);
    const hid_t paths = H5Dcreate2(file, "paths", text, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    ASSERT_GE(maps, 0);
    ASSERT_GE(paths, 0);
    H5Dclose(paths);
    H5Tclose(text);
    H5Dclose(maps);
    H5Pclose(plist);
    H5Sclose(space);
    H5Fclose(file);
    ASSERT_LT(fs::file_size(path), 64u * 1024u);
}

void expect_io_error_naming(const std::function<void()>& read, const std::string& path,
                            const std::string& dataset) {
    try {
        read();
        FAIL() << "reading " << dataset << " of " << path << " did not throw";
    } catch (const IoError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(path), std::string::npos) << what;
        EXPECT_NE(what.find(dataset), std::string::npos) << what;
    }
}

TEST(H5FileHostile, ShapeWhoseElementCountWrapsToZeroIsAnIoError) {
    // 2^62 * 4 elements = 2^64, which wraps to 0 in 64-bit arithmetic.
    const std::string path = temp_path("wraps_to_zero.h5");
    write_header_only(path, {hsize_t{1} << 62, 4, 1});
    H5File file(path, H5File::Mode::kRead);
    expect_io_error_naming([&] { file.read_float("maps"); }, path, "maps");
    expect_io_error_naming([&] { file.read_strings("paths"); }, path, "paths");
}

TEST(H5FileHostile, ShapeWhoseElementCountWrapsToASmallNumberIsAnIoError) {
    // (2^61 + 1) * 8 = 2^64 + 8 elements: a wrapped count of 8 would size the
    // buffer for 8 floats while HDF5 writes the fill value into far more.
    const std::string path = temp_path("wraps_to_eight.h5");
    write_header_only(path, {(hsize_t{1} << 61) + 1, 8, 1});
    H5File file(path, H5File::Mode::kRead);
    expect_io_error_naming([&] { file.read_float("maps"); }, path, "maps");
    expect_io_error_naming([&] { file.read_double("maps"); }, path, "maps");
    expect_io_error_naming([&] { file.read_int64("maps"); }, path, "maps");
}

TEST(H5FileHostile, HugeDatasetWithNoStoredDataIsAnIoErrorNotAnAllocation) {
    // 64 x 16384 x 16384 floats = 64 GiB claimed by a file of a few kilobytes.
    const std::string path = temp_path("huge_claim.h5");
    write_header_only(path, {64, 16384, 16384});
    H5File file(path, H5File::Mode::kRead);
    expect_io_error_naming([&] { file.read_float("maps"); }, path, "maps");
    // 3.6 GB: small enough that an allocation might succeed and fill memory.
    const std::string path2 = temp_path("large_claim.h5");
    write_header_only(path2, {1, 30000, 30000});
    H5File file2(path2, H5File::Mode::kRead);
    expect_io_error_naming([&] { file2.read_float("maps"); }, path2, "maps");
}

TEST(H5FileHostile, CompressedDatasetWithRealDataStillReads) {
    // The checks run before allocation and must leave ordinary chunked,
    // deflated datasets (how anomaly maps are stored) alone.
    const std::string path = temp_path("compressed_ok.h5");
    FloatArray a({4, 64, 64});
    for (size_t i = 0; i < a.values.size(); ++i) a.values[i] = static_cast<float>(i % 97);
    {
        H5File file(path, H5File::Mode::kTruncate);
        file.write("maps", a, /*compress=*/true);
    }
    H5File file(path, H5File::Mode::kRead);
    const FloatArray back = file.read_float("maps");
    ASSERT_EQ(back.shape, a.shape);
    EXPECT_EQ(back.values, a.values);  // exact: float32 stored and read as float32
}

}  // namespace
}  // namespace winclip::io
