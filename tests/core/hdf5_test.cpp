#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/hdf5.h"

namespace winclip::io {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / "winclip_hdf5_test";
    fs::create_directories(dir);
    return (dir / name).string();
}

TEST(H5File, RoundTripsEveryTypeThroughAFile) {
    const std::string path = temp_path("roundtrip.h5");
    {
        H5File f(path, H5File::Mode::kTruncate);
        f.write("a/b/floats", FloatArray({2, 3}, {1.5f, -2.f, 3.25f, 0.f, 1e-7f, 1e7f}));
        f.write("doubles", DoubleArray({2}, {0.1, -1e300}));
        f.write("ints", Int64Array({3}, {-1, 0, int64_t{1} << 40}));
        f.write_int32("i32", Array<int32_t>({2}, {7, -7}));
        f.write_strings("names", {"bottle", "", "caf\xc3\xa9"});
        f.write_half("half", FloatArray({3}, {1.0f, 0.333333f, 65504.f}), /*compress=*/true);
        f.write("big", FloatArray({4, 1000}), /*compress=*/true);
        f.link("alias/floats", "/a/b/floats");
        f.write("mask", Array<uint8_t>({2, 2}, {0, 1, 255, 0}), /*compress=*/true);
        f.write_attribute("/", "note", std::string("hello"));
        f.write_attribute("a/b/floats", "scale", 0.25);
        f.write_attribute("/", "count", int64_t{12});
        f.close();
    }
    H5File f(path, H5File::Mode::kRead);
    const auto floats = f.read_float("a/b/floats");
    EXPECT_EQ(floats.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(floats.values, (std::vector<float>{1.5f, -2.f, 3.25f, 0.f, 1e-7f, 1e7f}));
    EXPECT_EQ(f.read_double("doubles").values, (std::vector<double>{0.1, -1e300}));
    EXPECT_EQ(f.read_int64("ints").values, (std::vector<int64_t>{-1, 0, int64_t{1} << 40}));
    EXPECT_EQ(f.read_float("alias/floats").values, floats.values);  // through the soft link
    EXPECT_EQ(f.read_int64("mask").values, (std::vector<int64_t>{0, 1, 255, 0}));
    EXPECT_EQ(f.read_int64("i32").values, (std::vector<int64_t>{7, -7}));
    EXPECT_EQ(f.read_strings("names"), (std::vector<std::string>{"bottle", "", "caf\xc3\xa9"}));
    // float16 keeps 11 significant bits: relative error at most 2^-11.
    const auto half = f.read_float("half");
    EXPECT_EQ(half.values[0], 1.0f);
    EXPECT_NEAR(half.values[1], 0.333333f, 0.333333f * std::ldexp(1.0, -11));
    EXPECT_EQ(half.values[2], 65504.f);
    EXPECT_EQ(f.read_float("big").numel(), 4000);
    EXPECT_EQ(f.read_attribute_string("/", "note"), "hello");
    EXPECT_EQ(f.read_attribute_double("a/b/floats", "scale"), 0.25);
    EXPECT_EQ(f.read_attribute_double("/", "count"), 12.0);
    EXPECT_TRUE(f.exists("a/b"));
    EXPECT_TRUE(f.is_group("a/b"));
    EXPECT_FALSE(f.is_group("a/b/floats"));
    EXPECT_FALSE(f.exists("a/missing/deeper"));
    EXPECT_EQ(f.list("/"), (std::vector<std::string>{"a", "alias", "big", "doubles", "half", "i32", "ints", "mask",
                                                     "names"}));
}

TEST(H5File, ReadsTheGoldenFixture) {
    H5File f(std::string(WINCLIP_TEST_DATA) + "/fixtures/tinyclip-vit-240-golden.h5",
             H5File::Mode::kRead);
    EXPECT_EQ(f.shape("images/pixels"), (std::vector<int64_t>{5, 3, 240, 240}));
    EXPECT_EQ(f.read_strings("tokenizer/text")[0], "a photo of a bottle.");
    const auto ids = f.read_int64("tokenizer/ids");
    EXPECT_EQ(ids.values[0], 49406);  // start token
    EXPECT_EQ(f.read_attribute_string("/", "class_name"), "bottle");
    EXPECT_EQ(f.read_int64("images/window_masks_2").shape, (std::vector<int64_t>{4, 196}));
}

TEST(H5File, ErrorsNameTheFileAndObject) {
    try {
        H5File f("/nonexistent/dir/x.h5", H5File::Mode::kRead);
        FAIL();
    } catch (const IoError& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.h5"), std::string::npos);
    }
    const std::string path = temp_path("errors.h5");
    H5File f(path, H5File::Mode::kTruncate);
    f.write_strings("s", {"x"});
    try {
        f.read_float("missing/data");
        FAIL();
    } catch (const IoError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("missing/data"), std::string::npos) << msg;
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
    }
    EXPECT_THROW(f.read_float("s"), IoError);  // strings are not numeric
}

TEST(H5File, TruncatedFileIsAnIoErrorNamingIt) {
    const std::string path = temp_path("truncated.h5");
    {
        H5File f(path, H5File::Mode::kTruncate);
        f.write("x", FloatArray({1000}));
    }
    fs::resize_file(path, fs::file_size(path) / 2);
    try {
        H5File f(path, H5File::Mode::kRead);
        f.read_float("x");
        FAIL() << "expected IoError";
    } catch (const IoError& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    }
}

}  // namespace
}  // namespace winclip::io
