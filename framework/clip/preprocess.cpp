#include "clip/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"

namespace winclip::clip {
namespace {

// Fixed-point precision of Pillow's 8-bit resampler: 32 bits minus 8 for the
// sample minus 2 of headroom, because bicubic weights can be negative and
// partial sums can leave [0, 1].
constexpr int kPrecisionBits = 32 - 8 - 2;

// Keys' cubic convolution kernel with a = -0.5, support 2 (Pillow's BICUBIC).
double bicubic(double x) {
    constexpr double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

// A rectangle of output pixels: [x0, x0 + w) x [y0, y0 + h).
struct Region {
    int x0 = 0, y0 = 0, w = 0, h = 0;
};

// The filter taps of one resampling pass: output position o reads inputs
// first[o] .. first[o] + count[o] - 1 with weights[o * taps + i].
struct Taps {
    int taps = 0;
    std::vector<int> first, count;
    std::vector<int32_t> weights;  // fixed point, kPrecisionBits fractional bits
};

// Pillow's coefficient set-up for an input span [0, in_size) mapped onto
// out_size outputs. When shrinking, the kernel is stretched by the scale so it
// averages over every input pixel (antialiasing); the weights of each output
// are normalised to sum 1 before rounding to fixed point.
// Only outputs [out_first, out_first + out_count) are set up: each output's
// taps depend on nothing but its own index, so a crop of a huge resize costs
// what the crop costs.
Taps make_taps(int in_size, int out_size, int out_first, int out_count) {
    WINCLIP_CHECK(out_first >= 0 && out_count > 0 && out_first + int64_t{out_count} <= out_size);
    // Pillow keeps the box in float and divides in double.
    const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
    const double filter_scale = std::max(scale, 1.0);
    const double support = 2.0 * filter_scale;
    Taps t;
    t.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
    t.first.resize(out_count);
    t.count.resize(out_count);
    t.weights.assign(size_t(out_count) * t.taps, 0);
    std::vector<double> w(t.taps);
    for (int o = 0; o < out_count; ++o) {
        const double center = (int64_t{out_first} + o + 0.5) * scale;
        // Truncation toward zero, then clamping, exactly as Pillow rounds the window.
        const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
        const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
        const int n = hi - lo;
        WINCLIP_CHECK(n > 0 && n <= t.taps);
        double sum = 0.0;
        for (int i = 0; i < n; ++i) {
            w[i] = bicubic((i + lo - center + 0.5) / filter_scale);
            sum += w[i];
        }
        for (int i = 0; i < n; ++i) {
            const double k = sum != 0.0 ? w[i] / sum : w[i];
            // Round half away from zero to fixed point.
            const double f = k * (1 << kPrecisionBits);
            t.weights[size_t(o) * t.taps + i] = static_cast<int32_t>(k < 0 ? f - 0.5 : f + 0.5);
        }
        t.first[o] = lo;
        t.count[o] = n;
    }
    return t;
}

// Rounds a fixed-point sum (already offset by one half) to 8 bits and clips.
// The shift is arithmetic, so negative sums floor like Pillow's lookup table.
inline uint8_t clip8(int32_t sum) {
    const int32_t v = sum >> kPrecisionBits;
    return static_cast<uint8_t>(std::clamp<int32_t>(v, 0, 255));
}

// One pass along x over rows [row0, row0 + rows) of `in` (width in_w).
std::vector<uint8_t> resample_horizontal(const std::vector<uint8_t>& in, int in_w, int channels,
                                         int row0, int rows, const Taps& t, int out_w) {
    std::vector<uint8_t> out(size_t(out_w) * rows * channels);
    for (int y = 0; y < rows; ++y) {
        const uint8_t* src = in.data() + size_t(row0 + y) * in_w * channels;
        uint8_t* dst = out.data() + size_t(y) * out_w * channels;
        for (int o = 0; o < out_w; ++o) {
            const int32_t* k = t.weights.data() + size_t(o) * t.taps;
            const uint8_t* s = src + size_t(t.first[o]) * channels;
            for (int c = 0; c < channels; ++c) {
                int32_t sum = 1 << (kPrecisionBits - 1);
                for (int i = 0; i < t.count[o]; ++i) sum += s[size_t(i) * channels + c] * k[i];
                dst[size_t(o) * channels + c] = clip8(sum);
            }
        }
    }
    return out;
}

// One pass along y; `first` rows are relative to `row0`, the first row `in` holds.
std::vector<uint8_t> resample_vertical(const std::vector<uint8_t>& in, int width, int channels,
                                       int row0, const Taps& t, int out_h) {
    const size_t stride = size_t(width) * channels;
    std::vector<uint8_t> out(stride * out_h);
    for (int o = 0; o < out_h; ++o) {
        const int32_t* k = t.weights.data() + size_t(o) * t.taps;
        const uint8_t* src = in.data() + size_t(t.first[o] - row0) * stride;
        uint8_t* dst = out.data() + size_t(o) * stride;
        for (size_t x = 0; x < stride; ++x) {
            int32_t sum = 1 << (kPrecisionBits - 1);
            for (int i = 0; i < t.count[o]; ++i) sum += src[size_t(i) * stride + x] * k[i];
            dst[x] = clip8(sum);
        }
    }
    return out;
}

// Pillow's NEAREST resize (an affine scale): the source index of output x is
// the truncation of a position that starts at scale / 2 and advances by
// repeated addition of the scale, rounding included.
// Only outputs [out_first, out_first + out_count) are returned; the position
// is still advanced from output 0, because the repeated addition rounds.
std::vector<int> nearest_index(int in_size, int out_size, int out_first, int out_count) {
    const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
    std::vector<int> index(out_count);
    double pos = scale * 0.5;
    for (int o = 0; o < out_first + out_count; ++o) {
        if (o >= out_first) {
            const int source = pos < 0.0 ? -1 : static_cast<int>(pos);
            index[o - out_first] = std::clamp(source, 0, in_size - 1);
        }
        pos += scale;
    }
    return index;
}

// The region [x0, x0 + w) x [y0, y0 + h) of a width x height NEAREST resize.
io::DecodedImage resize_nearest(const io::DecodedImage& image, int width, int height,
                                const Region& region) {
    const int c = image.channels();
    const std::vector<int> xs = nearest_index(image.width, width, region.x0, region.w);
    const std::vector<int> ys = nearest_index(image.height, height, region.y0, region.h);
    io::DecodedImage out = image;
    out.width = region.w;
    out.height = region.h;
    out.pixels.assign(size_t(region.w) * region.h * c, 0);
    for (int y = 0; y < region.h; ++y) {
        const uint8_t* src = image.pixels.data() + size_t(ys[y]) * image.width * c;
        uint8_t* dst = out.pixels.data() + size_t(y) * region.w * c;
        for (int x = 0; x < region.w; ++x) {
            std::copy_n(src + size_t(xs[x]) * c, c, dst + size_t(x) * c);
        }
    }
    return out;
}

inline int mul_div_255(int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

// Pillow resizes RGBA as "RGBa" and LA as "La": colour premultiplied by alpha
// (rounded MULDIV255), then divided back with integer division afterwards.
void premultiply(io::DecodedImage& image) {
    const int c = image.channels();
    for (size_t p = 0; p < image.pixels.size(); p += c) {
        const int alpha = image.pixels[p + c - 1];
        for (int k = 0; k < c - 1; ++k) {
            image.pixels[p + k] = static_cast<uint8_t>(mul_div_255(image.pixels[p + k], alpha));
        }
    }
}

void unpremultiply(io::DecodedImage& image) {
    const int c = image.channels();
    for (size_t p = 0; p < image.pixels.size(); p += c) {
        const int alpha = image.pixels[p + c - 1];
        if (alpha == 0 || alpha == 255) continue;
        for (int k = 0; k < c - 1; ++k) {
            image.pixels[p + k] =
                static_cast<uint8_t>(std::min(255 * image.pixels[p + k] / alpha, 255));
        }
    }
}

}  // namespace

io::ImageSize shorter_side_size(int width, int height, int size) {
    WINCLIP_CHECK(width > 0 && height > 0 && size > 0);
    const int short_side = std::min(width, height);
    const int long_side = std::max(width, height);
    // Python: int(size * long / short); the product is exact, the quotient a
    // double, the conversion truncates.
    const double new_long_exact =
        static_cast<double>(int64_t{size} * long_side) / static_cast<double>(short_side);
    if (new_long_exact >= static_cast<double>(std::numeric_limits<int>::max())) {
        throw IoError("image of " + std::to_string(width) + " x " + std::to_string(height) +
                      " pixels is too elongated to resize its shorter side to " +
                      std::to_string(size));
    }
    const int new_long = static_cast<int>(new_long_exact);
    return width <= height ? io::ImageSize{size, new_long} : io::ImageSize{new_long, size};
}

int center_crop_offset(int length, int crop) {
    WINCLIP_CHECK(length >= crop && crop > 0);
    // round((length - crop) / 2.0) with ties to even: the half only occurs
    // for an odd difference d, where the candidates are d / 2 and d / 2 + 1.
    const int d = length - crop;
    if (d % 2 == 0) return d / 2;
    const int lower = d / 2;
    return lower % 2 == 0 ? lower : lower + 1;
}

namespace {

// The region of Pillow's width x height resize of `image`, bit for bit: every
// output pixel of both passes depends only on its own coordinates, so
// computing just the region gives the same values as resizing everything and
// cropping, at the cost of the region alone. That matters for elongated
// images: a 1 x 60000 image resized to S = 240 on its short side would be
// 240 x 14,400,000 pixels, of which the centre crop keeps 240 x 240.
io::DecodedImage resize_region(const io::DecodedImage& image, int width, int height,
                               const Region& region) {
    WINCLIP_CHECK(width > 0 && height > 0 && image.width > 0 && image.height > 0);
    WINCLIP_CHECK(image.pixels.size() == size_t(image.width) * image.height * image.channels());
    WINCLIP_CHECK(region.x0 >= 0 && region.y0 >= 0 && region.w > 0 && region.h > 0 &&
                  int64_t{region.x0} + region.w <= width &&
                  int64_t{region.y0} + region.h <= height);
    if (image.nearest_only && (width != image.width || height != image.height)) {
        return resize_nearest(image, width, height, region);
    }

    io::DecodedImage work = image;
    const bool alpha =
        image.mode == io::PixelMode::kRgba || image.mode == io::PixelMode::kGrayAlpha;
    const bool resizes = width != image.width || height != image.height;
    if (alpha && resizes) premultiply(work);
    const int c = work.channels();

    // Two passes as Pillow does them: horizontal first, over only the rows the
    // vertical pass will read, each pass rounded to 8 bits. A pass whose size
    // does not change is skipped (Pillow copies), which here is a plain crop.
    int row0 = region.y0;
    int rows = region.h;
    Taps vertical;
    if (height != image.height) {
        vertical = make_taps(image.height, height, region.y0, region.h);
        row0 = vertical.first.front();
        rows = vertical.first.back() + vertical.count.back() - row0;
    }
    std::vector<uint8_t> pixels;
    if (width != image.width) {
        const Taps horizontal = make_taps(image.width, width, region.x0, region.w);
        pixels = resample_horizontal(work.pixels, image.width, c, row0, rows, horizontal, region.w);
    } else {
        pixels.resize(size_t(region.w) * rows * c);
        for (int y = 0; y < rows; ++y) {
            std::copy_n(work.pixels.data() + (size_t(row0 + y) * image.width + region.x0) * c,
                        size_t(region.w) * c, pixels.data() + size_t(y) * region.w * c);
        }
    }
    if (height != image.height) {
        pixels = resample_vertical(pixels, region.w, c, row0, vertical, region.h);
    }
    work.width = region.w;
    work.height = region.h;
    work.pixels = std::move(pixels);
    if (alpha && resizes) unpremultiply(work);
    return work;
}

}  // namespace

io::DecodedImage resize_bicubic(const io::DecodedImage& image, int width, int height) {
    WINCLIP_CHECK(width > 0 && height > 0 && image.width > 0 && image.height > 0);
    if (width == image.width && height == image.height) return image;  // Pillow copies
    return resize_region(image, width, height, Region{0, 0, width, height});
}

io::RgbImage resize_crop(const io::DecodedImage& image, int size, PreprocessGeometry* geometry) {
    WINCLIP_CHECK(size > 0);
    const io::ImageSize resized = shorter_side_size(image.width, image.height, size);
    const int left = center_crop_offset(resized.width, size);
    const int top = center_crop_offset(resized.height, size);

    // Resize only the crop, in the stored mode, then convert to RGB (OpenCLIP
    // converts last).
    const io::DecodedImage crop =
        resize_region(image, resized.width, resized.height, Region{left, top, size, size});

    if (geometry) {
        PreprocessGeometry& g = *geometry;
        g.width = image.width;
        g.height = image.height;
        g.resized_width = resized.width;
        g.resized_height = resized.height;
        g.crop_left = left;
        g.crop_top = top;
        g.size = size;
        const double sx = static_cast<double>(image.width) / resized.width;
        const double sy = static_cast<double>(image.height) / resized.height;
        g.crop_x0 = left * sx;
        g.crop_x1 = (left + size) * sx;
        g.crop_y0 = top * sy;
        g.crop_y1 = (top + size) * sy;
    }
    return io::to_rgb(crop);
}

FloatArray normalize_rgb(const io::RgbImage& image) {
    const size_t plane = size_t(image.width) * image.height;
    WINCLIP_CHECK(image.rgb.size() == plane * 3);
    FloatArray out({3, image.height, image.width});
    for (int c = 0; c < 3; ++c) {
        // torchvision computes in float32: ToTensor divides by 255, Normalize
        // subtracts the float32 mean and divides by the float32 std.
        const float mean = static_cast<float>(kClipMean[c]);
        const float std = static_cast<float>(kClipStd[c]);
        float* dst = out.data() + c * plane;
        for (size_t i = 0; i < plane; ++i) {
            const float v = static_cast<float>(image.rgb[3 * i + c]) / 255.0f;
            dst[i] = (v - mean) / std;
        }
    }
    return out;
}

FloatArray preprocess(const io::DecodedImage& image, int size, PreprocessGeometry* geometry) {
    return normalize_rgb(resize_crop(image, size, geometry));
}

FloatArray preprocess_file(const std::string& path, int size, PreprocessGeometry* geometry) {
    return preprocess(io::decode_image(path), size, geometry);
}

FloatArray preprocess_files(const std::vector<std::string>& paths, int size,
                            std::vector<PreprocessGeometry>* geometry) {
    WINCLIP_CHECK(size > 0);
    const size_t per_image = size_t(3) * size * size;
    FloatArray batch({static_cast<int64_t>(paths.size()), 3, size, size});
    if (geometry) geometry->assign(paths.size(), PreprocessGeometry{});
    for (size_t i = 0; i < paths.size(); ++i) {
        const FloatArray one =
            preprocess_file(paths[i], size, geometry ? &(*geometry)[i] : nullptr);
        std::copy(one.values.begin(), one.values.end(), batch.values.begin() + i * per_image);
    }
    return batch;
}

}  // namespace winclip::clip
