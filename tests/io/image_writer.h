// Test-only helpers that write PNG and JPEG files with libpng / libjpeg, so the
// decoder is checked against files whose every sample is known.
#pragma once

#include <jpeglib.h>
#include <png.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace winclip::testing {

// A fresh folder under the system temp dir, removed with its contents at exit.
class TempDir {
  public:
    TempDir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "winclip-test-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    std::string file(const std::string& name) const { return (path_ / name).string(); }
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
};

struct PngSpec {
    int width = 0, height = 0;
    int color_type = PNG_COLOR_TYPE_RGB;
    int bit_depth = 8;
    bool interlaced = false;
    // Samples row-major, channel-interleaved, at bit_depth (palette: indices).
    std::vector<uint16_t> samples;
    std::vector<png_color> palette;
    std::vector<uint8_t> palette_alpha;  // tRNS for palette images
};

inline void write_png(const std::string& path, const PngSpec& spec) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        std::fclose(f);
        throw std::runtime_error("libpng failed writing " + path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
                 spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (!spec.palette.empty()) {
        png_set_PLTE(png, info, spec.palette.data(), static_cast<int>(spec.palette.size()));
    }
    if (!spec.palette_alpha.empty()) {
        png_set_tRNS(png, info, spec.palette_alpha.data(),
                     static_cast<int>(spec.palette_alpha.size()), nullptr);
    }
    png_write_info(png, info);
    if (spec.bit_depth < 8) png_set_packing(png);

    int channels = 1;
    if (spec.color_type == PNG_COLOR_TYPE_GRAY_ALPHA) channels = 2;
    if (spec.color_type == PNG_COLOR_TYPE_RGB) channels = 3;
    if (spec.color_type == PNG_COLOR_TYPE_RGB_ALPHA) channels = 4;
    const size_t row_samples = size_t(spec.width) * channels;
    const size_t bytes_per_sample = spec.bit_depth == 16 ? 2 : 1;
    std::vector<uint8_t> data(row_samples * bytes_per_sample * spec.height);
    for (size_t i = 0; i < spec.samples.size(); ++i) {
        if (bytes_per_sample == 2) {
            data[2 * i] = static_cast<uint8_t>(spec.samples[i] >> 8);  // PNG is big-endian
            data[2 * i + 1] = static_cast<uint8_t>(spec.samples[i] & 0xff);
        } else {
            data[i] = static_cast<uint8_t>(spec.samples[i]);
        }
    }
    std::vector<png_bytep> rows(spec.height);
    for (int y = 0; y < spec.height; ++y) {
        rows[y] = data.data() + size_t(y) * row_samples * bytes_per_sample;
    }
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
}

// components 1 (gray), 3 (RGB) or 4 (CMYK, written as given with libjpeg's
// Adobe marker, which is how Photoshop-style inverted CMYK files are tagged).
inline void write_jpeg(const std::string& path, int width, int height, int components,
                       const std::vector<uint8_t>& pixels, int quality) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path);
    jpeg_compress_struct cinfo;
    jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row =
            const_cast<uint8_t*>(pixels.data()) + size_t(cinfo.next_scanline) * width * components;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    std::fclose(f);
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path);
    if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("cannot read " + path);
    std::vector<uint8_t> bytes;
    uint8_t buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0)
        bytes.insert(bytes.end(), buffer, buffer + n);
    std::fclose(f);
    return bytes;
}

}  // namespace winclip::testing
