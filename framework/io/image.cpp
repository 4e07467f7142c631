#include "io/image.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

// jpeglib.h needs size_t and FILE declared before it.
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "core/error.h"
#include "io/file.h"

namespace winclip::io {
namespace {

// Refuse images whose pixel buffer would not fit comfortably in memory: a
// corrupt header can claim any size, and failing cleanly beats a bad_alloc.
constexpr uint64_t kMaxPixels = uint64_t{1} << 28;

const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

[[noreturn]] void fail(const std::string& name, const std::string& what) {
    throw IoError("cannot decode image " + name + ": " + what);
}

void check_dimensions(const std::string& name, uint64_t width, uint64_t height) {
    if (width == 0 || height == 0 || width * height > kMaxPixels) {
        fail(name, "unsupported size " + std::to_string(width) + " x " + std::to_string(height));
    }
}

// Pillow's MULDIV255: a * b / 255 rounded, in integers.
inline int mul_div_255(int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

// ---------------------------------------------------------------------------
// PNG through libpng. libpng reports errors by longjmp, so everything that
// lives across setjmp is plain data owned by the caller (PngRead), and the
// function holding setjmp creates no C++ objects with destructors.

struct PngRaw {
    int width = 0;
    int height = 0;
    int color_type = 0;  // PNG_COLOR_TYPE_* of the file
    int bit_depth = 0;   // of the decoded samples: 8 or 16 (16 is big-endian)
    int channels = 0;    // samples per decoded pixel (palette: 1 index)
    bool one_bit_gray = false;
    std::vector<uint8_t> data;  // rows, tightly packed
    std::vector<png_color> palette;
};

struct PngRead {
    const std::vector<uint8_t>* bytes = nullptr;
    size_t offset = 0;
    char message[256] = {0};
    PngRaw* out = nullptr;
    std::vector<png_bytep>* rows = nullptr;
};

void png_on_error(png_structp png, png_const_charp message) {
    auto* state = static_cast<PngRead*>(png_get_error_ptr(png));
    std::snprintf(state->message, sizeof(state->message), "%s", message ? message : "");
    png_longjmp(png, 1);
}

// Warnings (bad ancillary chunks, CRC errors in them) are ignored like Pillow does.
void png_on_warning(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep dest, png_size_t length) {
    auto* state = static_cast<PngRead*>(png_get_io_ptr(png));
    if (state->bytes->size() - state->offset < length) {
        png_error(png, "file is truncated (unexpected end of data)");
    }
    std::memcpy(dest, state->bytes->data() + state->offset, length);
    state->offset += length;
}

// Deflate expands its input by at most about 1032:1 (a 258-byte match per
// two bits); with margin, a PNG whose IDAT chunks hold fewer than
// 1 / kMaxInflateRatio of the image's bytes cannot be complete.
constexpr uint64_t kMaxInflateRatio = 1100;

// Total payload of the file's IDAT chunks, walking the chunk list up to IEND
// or the first chunk that runs past the end of the buffer.
uint64_t idat_payload_bytes(const std::vector<uint8_t>& bytes) {
    uint64_t total = 0;
    size_t at = 8;  // after the signature
    while (bytes.size() - at >= 12) {
        const uint64_t length = (uint64_t{bytes[at]} << 24) | (uint64_t{bytes[at + 1]} << 16) |
                                (uint64_t{bytes[at + 2]} << 8) | uint64_t{bytes[at + 3]};
        const uint8_t* type = bytes.data() + at + 4;
        const uint64_t available = bytes.size() - at - 12;
        if (std::memcmp(type, "IDAT", 4) == 0) total += std::min(length, available);
        if (std::memcmp(type, "IEND", 4) == 0 || length > available) break;
        at += 12 + static_cast<size_t>(length);
    }
    return total;
}

// Returns false with state->message set on any libpng error.
bool png_decode_raw(png_structp png, png_infop info, PngRead* state) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_set_read_fn(png, state, png_read_memory);
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);

    PngRaw& raw = *state->out;
    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
    if (width == 0 || height == 0 || uint64_t{width} * height > kMaxPixels) {
        png_error(png, "unsupported image size");
    }
    // Refuse a header whose image the compressed data cannot possibly hold
    // before reserving memory for it: a 69-byte file can claim 2 GB of pixels.
    const uint64_t file_bits_per_pixel =
        uint64_t(bit_depth) * png_get_channels(png, info);
    const uint64_t least_inflated = uint64_t{width} * height * file_bits_per_pixel / 8;
    const uint64_t idat = idat_payload_bytes(*state->bytes);
    if (idat * kMaxInflateRatio < least_inflated) {
        char what[160];
        std::snprintf(what, sizeof(what),
                      "file is truncated: %llu bytes of image data cannot hold %u x %u pixels",
                      static_cast<unsigned long long>(idat), width, height);
        png_error(png, what);
    }
    raw.width = static_cast<int>(width);
    raw.height = static_cast<int>(height);
    raw.color_type = color_type;
    raw.one_bit_gray = color_type == PNG_COLOR_TYPE_GRAY && bit_depth == 1;

    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        // Keep indices (one byte each) and look colours up ourselves: libpng's
        // own palette expansion would also turn tRNS into an alpha channel.
        png_set_packing(png);
        png_colorp palette = nullptr;
        int count = 0;
        if (png_get_PLTE(png, info, &palette, &count) != PNG_INFO_PLTE || count <= 0) {
            png_error(png, "palette image without a PLTE chunk");
        }
        raw.palette.assign(palette, palette + count);
    } else if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
        // Scales 1/2/4-bit gray to 0..255 (x255, x85, x17), as Pillow does; no tRNS.
        png_set_expand_gray_1_2_4_to_8(png);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    raw.bit_depth = png_get_bit_depth(png, info);
    raw.channels = png_get_channels(png, info);
    const size_t row_bytes = png_get_rowbytes(png, info);
    if (row_bytes != size_t{width} * raw.channels * (raw.bit_depth / 8)) {
        png_error(png, "unexpected row layout after transforms");
    }
    raw.data.resize(row_bytes * height);
    state->rows->resize(height);
    for (png_uint_32 y = 0; y < height; ++y) (*state->rows)[y] = raw.data.data() + y * row_bytes;
    png_read_image(png, state->rows->data());
    return true;
}

PngRaw decode_png_raw(const std::vector<uint8_t>& bytes, const std::string& name) {
    PngRaw raw;
    std::vector<png_bytep> rows;
    PngRead state;
    state.bytes = &bytes;
    state.out = &raw;
    state.rows = &rows;
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, png_on_error, png_on_warning);
    if (!png) fail(name, "libpng could not allocate a reader");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        fail(name, "libpng could not allocate a reader");
    }
    const bool ok = png_decode_raw(png, info, &state);
    png_destroy_read_struct(&png, &info, nullptr);
    if (!ok) fail(name, std::string("corrupt or truncated PNG: ") + state.message);
    return raw;
}

// 16-bit samples keep their high byte (Pillow's ;16B unpackers do the same).
inline uint8_t sample8(const PngRaw& raw, size_t index) {
    return raw.bit_depth == 16 ? raw.data[2 * index] : raw.data[index];
}

DecodedImage png_to_image(const PngRaw& raw, const std::string& name) {
    DecodedImage image;
    image.width = raw.width;
    image.height = raw.height;
    image.nearest_only = raw.one_bit_gray || raw.color_type == PNG_COLOR_TYPE_PALETTE;
    const size_t n = size_t(raw.width) * raw.height;

    if (raw.color_type == PNG_COLOR_TYPE_PALETTE) {
        image.mode = PixelMode::kRgb;
        image.pixels.resize(n * 3);
        for (size_t i = 0; i < n; ++i) {
            const size_t index = raw.data[i];
            // An index past the palette's end is black in Pillow (its palette
            // has 256 entries, the unused ones zero).
            const png_color c =
                index < raw.palette.size() ? raw.palette[index] : png_color{0, 0, 0};
            image.pixels[3 * i + 0] = c.red;
            image.pixels[3 * i + 1] = c.green;
            image.pixels[3 * i + 2] = c.blue;
        }
        return image;
    }
    switch (raw.color_type) {
        case PNG_COLOR_TYPE_GRAY:
            image.mode = PixelMode::kGray;
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            image.mode = PixelMode::kGrayAlpha;
            break;
        case PNG_COLOR_TYPE_RGB:
            image.mode = PixelMode::kRgb;
            break;
        case PNG_COLOR_TYPE_RGB_ALPHA:
            image.mode = PixelMode::kRgba;
            break;
        default:
            fail(name, "unknown PNG colour type " + std::to_string(raw.color_type));
    }
    if (raw.channels != image.channels()) {
        fail(name, "PNG decoded to " + std::to_string(raw.channels) + " channels, expected " +
                       std::to_string(image.channels()));
    }
    const size_t samples = n * image.channels();
    image.pixels.resize(samples);
    for (size_t i = 0; i < samples; ++i) image.pixels[i] = sample8(raw, i);
    return image;
}

// ---------------------------------------------------------------------------
// JPEG through libjpeg-turbo, with the same setjmp discipline as PNG.

struct JpegError {
    jpeg_error_mgr manager;  // first member: libjpeg hands back a pointer to it
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX] = {0};
    bool truncated = false;
};

void jpeg_on_error(j_common_ptr cinfo) {
    auto* error = reinterpret_cast<JpegError*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, error->message);
    longjmp(error->jump, 1);
}

// libjpeg treats a missing end of data as a warning and pads the image with
// grey; Pillow refuses such a file ("image file is truncated"), so do we.
// Other warnings (extraneous bytes and the like) are ignored, as Pillow does.
void jpeg_on_message(j_common_ptr cinfo, int level) {
    auto* error = reinterpret_cast<JpegError*>(cinfo->err);
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) error->truncated = true;
}

struct JpegRead {
    const std::vector<uint8_t>* bytes = nullptr;
    bool header_only = false;
    DecodedImage* out = nullptr;
};

bool jpeg_decode_into(jpeg_decompress_struct* cinfo, JpegError* error, JpegRead* request) {
    if (setjmp(error->jump)) return false;
    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, request->bytes->data(), static_cast<unsigned long>(request->bytes->size()));
    jpeg_read_header(cinfo, TRUE);
    DecodedImage& image = *request->out;
    image.width = static_cast<int>(cinfo->image_width);
    image.height = static_cast<int>(cinfo->image_height);
    if (request->header_only) return true;

    bool invert = false;
    switch (cinfo->jpeg_color_space) {
        case JCS_GRAYSCALE:
            cinfo->out_color_space = JCS_GRAYSCALE;
            image.mode = PixelMode::kGray;
            break;
        case JCS_CMYK:
        case JCS_YCCK:
            cinfo->out_color_space = JCS_CMYK;
            image.mode = PixelMode::kCmyk;
            // Adobe writes CMYK inverted (0 = full ink); Pillow's "CMYK;I".
            invert = cinfo->saw_Adobe_marker;
            break;
        default:
            cinfo->out_color_space = JCS_RGB;
            image.mode = PixelMode::kRgb;
            break;
    }
    // libjpeg's defaults are the ones Pillow decodes with: ISLOW DCT, fancy
    // upsampling, no block smoothing change. Set them explicitly anyway.
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;
    jpeg_start_decompress(cinfo);
    if (uint64_t{cinfo->output_width} * cinfo->output_height > kMaxPixels ||
        cinfo->output_components != image.channels()) {
        std::snprintf(error->message, sizeof(error->message),
                      "unsupported size or component count (%u x %u, %d components)",
                      cinfo->output_width, cinfo->output_height, cinfo->output_components);
        return false;
    }
    const size_t stride = size_t(cinfo->output_width) * cinfo->output_components;
    image.pixels.resize(stride * cinfo->output_height);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = image.pixels.data() + stride * cinfo->output_scanline;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    if (invert) {
        for (auto& v : image.pixels) v = static_cast<uint8_t>(255 - v);
    }
    return true;
}

DecodedImage decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name,
                         bool header_only) {
    DecodedImage image;
    jpeg_decompress_struct cinfo;
    JpegError error;
    cinfo.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = jpeg_on_error;
    error.manager.emit_message = jpeg_on_message;
    JpegRead request{&bytes, header_only, &image};
    const bool ok = jpeg_decode_into(&cinfo, &error, &request);
    jpeg_destroy_decompress(&cinfo);
    if (!ok) fail(name, std::string("corrupt or truncated JPEG: ") + error.message);
    if (error.truncated) fail(name, "JPEG file is truncated (premature end of data)");
    check_dimensions(name, image.width, image.height);
    return image;
}

}  // namespace

int channel_count(PixelMode mode) {
    switch (mode) {
        case PixelMode::kGray:
            return 1;
        case PixelMode::kGrayAlpha:
            return 2;
        case PixelMode::kRgb:
            return 3;
        case PixelMode::kRgba:
            return 4;
        case PixelMode::kCmyk:
            return 4;
    }
    WINCLIP_CHECK_MSG(false, "unknown PixelMode");
}

const char* mode_name(PixelMode mode) {
    switch (mode) {
        case PixelMode::kGray:
            return "L";
        case PixelMode::kGrayAlpha:
            return "LA";
        case PixelMode::kRgb:
            return "RGB";
        case PixelMode::kRgba:
            return "RGBA";
        case PixelMode::kCmyk:
            return "CMYK";
    }
    WINCLIP_CHECK_MSG(false, "unknown PixelMode");
}

ImageFormat detect_format(const std::vector<uint8_t>& bytes, const std::string& name) {
    if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPngSignature, 8) == 0) {
        return ImageFormat::kPng;
    }
    // Every JPEG starts with an SOI marker followed by another marker.
    if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
        return ImageFormat::kJpeg;
    }
    if (bytes.empty()) fail(name, "the file is empty");
    fail(name, "unknown image format (neither a PNG nor a JPEG signature)");
}

DecodedImage decode_image_bytes(const std::vector<uint8_t>& bytes, const std::string& name) {
    if (detect_format(bytes, name) == ImageFormat::kPng) {
        return png_to_image(decode_png_raw(bytes, name), name);
    }
    return decode_jpeg(bytes, name, /*header_only=*/false);
}

DecodedImage decode_image(const std::string& path) {
    return decode_image_bytes(read_file_bytes(path), path);
}

RgbImage to_rgb(const DecodedImage& image) {
    RgbImage out;
    out.width = image.width;
    out.height = image.height;
    const size_t n = size_t(image.width) * image.height;
    const int c = image.channels();
    WINCLIP_CHECK(image.pixels.size() == n * c);
    out.rgb.resize(n * 3);
    const uint8_t* in = image.pixels.data();
    uint8_t* o = out.rgb.data();
    for (size_t i = 0; i < n; ++i, in += c, o += 3) {
        switch (image.mode) {
            case PixelMode::kGray:
            case PixelMode::kGrayAlpha:
                o[0] = o[1] = o[2] = in[0];
                break;
            case PixelMode::kRgb:
            case PixelMode::kRgba:
                o[0] = in[0];
                o[1] = in[1];
                o[2] = in[2];
                break;
            case PixelMode::kCmyk: {
                // Pillow's cmyk2rgb: no colour management, ink multiplies down.
                const int nk = 255 - in[3];
                for (int k = 0; k < 3; ++k)
                    o[k] = static_cast<uint8_t>(nk - mul_div_255(in[k], nk));
                break;
            }
        }
    }
    return out;
}

RgbImage read_rgb(const std::string& path) { return to_rgb(decode_image(path)); }

ImageSize read_image_size(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file_bytes(path);
    if (detect_format(bytes, path) == ImageFormat::kPng) {
        // The IHDR chunk must come first: length 13, type, then width and height.
        if (bytes.size() < 24 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0) {
            fail(path, "PNG without a leading IHDR chunk");
        }
        auto be32 = [&](size_t at) {
            return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) |
                   (uint32_t{bytes[at + 2]} << 8) | uint32_t{bytes[at + 3]};
        };
        const uint32_t w = be32(16), h = be32(20);
        check_dimensions(path, w, h);
        return {static_cast<int>(w), static_cast<int>(h)};
    }
    const DecodedImage header = decode_jpeg(bytes, path, /*header_only=*/true);
    return {header.width, header.height};
}

Mask load_mask(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file_bytes(path);
    Mask mask;
    if (detect_format(bytes, path) == ImageFormat::kPng) {
        // Judge the samples at their own depth: 16-bit values 1..255 would
        // vanish if we reduced to 8 bits first. Palette masks keep indices.
        const PngRaw raw = decode_png_raw(bytes, path);
        mask.width = raw.width;
        mask.height = raw.height;
        const int colour = (raw.color_type == PNG_COLOR_TYPE_GRAY_ALPHA ||
                            raw.color_type == PNG_COLOR_TYPE_RGB_ALPHA)
                               ? raw.channels - 1
                               : raw.channels;
        const size_t bytes_per_sample = raw.bit_depth / 8;
        const size_t pixel_bytes = raw.channels * bytes_per_sample;
        const size_t n = size_t(raw.width) * raw.height;
        mask.values.resize(n);
        for (size_t i = 0; i < n; ++i) {
            const uint8_t* p = raw.data.data() + i * pixel_bytes;
            uint8_t any = 0;
            for (size_t b = 0; b < colour * bytes_per_sample; ++b) any |= p[b];
            mask.values[i] = any != 0;
        }
        return mask;
    }
    const RgbImage rgb = to_rgb(decode_jpeg(bytes, path, /*header_only=*/false));
    mask.width = rgb.width;
    mask.height = rgb.height;
    mask.values.resize(size_t(rgb.width) * rgb.height);
    for (size_t i = 0; i < mask.values.size(); ++i) {
        mask.values[i] = (rgb.rgb[3 * i] | rgb.rgb[3 * i + 1] | rgb.rgb[3 * i + 2]) != 0;
    }
    return mask;
}

}  // namespace winclip::io
