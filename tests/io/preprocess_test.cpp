// Tests of OpenCLIP's evaluation transform (framework/clip/preprocess.cpp),
// kept with the image tests because they need no LibTorch.
#include "clip/preprocess.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "core/error.h"
#include "image_writer.h"
#include "io/hdf5.h"

namespace winclip::clip {
namespace {

const std::string kRepo = WINCLIP_REPO_ROOT;
const std::string kGolden = std::string(WINCLIP_TEST_DATA) + "/fixtures/tinyclip-vit-240-golden.h5";

io::DecodedImage make_image(int w, int h, io::PixelMode mode, std::vector<uint8_t> pixels) {
    io::DecodedImage image;
    image.width = w;
    image.height = h;
    image.mode = mode;
    image.pixels = std::move(pixels);
    return image;
}

TEST(Preprocess, ConstantImageStaysConstant) {
    // Bicubic weights sum to one, so a flat image must come out flat and
    // exactly equal, whether shrunk (antialiased) or enlarged.
    for (int target : {7, 16, 90}) {
        std::vector<uint8_t> px;
        for (int i = 0; i < 37 * 53; ++i) px.insert(px.end(), {10, 200, 77});
        const io::RgbImage out = resize_crop(make_image(37, 53, io::PixelMode::kRgb, px), target);
        ASSERT_EQ(out.width, target);
        for (size_t i = 0; i < out.rgb.size(); i += 3) {
            ASSERT_EQ(out.rgb[i], 10) << target;
            ASSERT_EQ(out.rgb[i + 1], 200) << target;
            ASSERT_EQ(out.rgb[i + 2], 77) << target;
        }
    }
}

TEST(Preprocess, ShorterSideSizeTruncatesLikeTorchvision) {
    // int(240 * 333 / 250) = int(319.68) = 319: truncation, not rounding.
    EXPECT_EQ(shorter_side_size(333, 250, 240).width, 319);
    EXPECT_EQ(shorter_side_size(333, 250, 240).height, 240);
    EXPECT_EQ(shorter_side_size(250, 333, 240).width, 240);
    EXPECT_EQ(shorter_side_size(250, 333, 240).height, 319);
    EXPECT_EQ(shorter_side_size(900, 900, 240).width, 240);
    EXPECT_EQ(shorter_side_size(640, 480, 224).width, 298);  // 298.67
}

TEST(Preprocess, CenterCropOffsetRoundsHalfToEven) {
    // Python's round(): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 50.5 -> 50, 51.5 -> 52.
    EXPECT_EQ(center_crop_offset(3, 2), 0);
    EXPECT_EQ(center_crop_offset(5, 2), 2);
    EXPECT_EQ(center_crop_offset(7, 2), 2);
    EXPECT_EQ(center_crop_offset(201, 100), 50);
    EXPECT_EQ(center_crop_offset(203, 100), 52);
    EXPECT_EQ(center_crop_offset(100, 100), 0);
    EXPECT_EQ(center_crop_offset(104, 100), 2);
}

TEST(Preprocess, NonSquareImageGetsSizeOffsetsAndFootprint) {
    // 640 x 480 -> 298 x 224, crop left round(74 / 2) = 37, top 0.
    std::vector<uint8_t> px(640 * 480, 90);
    PreprocessGeometry g;
    const FloatArray out = preprocess(make_image(640, 480, io::PixelMode::kGray, px), 224, &g);
    EXPECT_EQ(out.shape, (std::vector<int64_t>{3, 224, 224}));
    EXPECT_EQ(g.width, 640);
    EXPECT_EQ(g.height, 480);
    EXPECT_EQ(g.resized_width, 298);
    EXPECT_EQ(g.resized_height, 224);
    EXPECT_EQ(g.crop_left, 37);
    EXPECT_EQ(g.crop_top, 0);
    EXPECT_EQ(g.size, 224);
    // Footprint in original pixels: x0 = 37 * 640 / 298, x1 = 261 * 640 / 298.
    EXPECT_NEAR(g.crop_x0, 37.0 * 640 / 298, 1e-12);
    EXPECT_NEAR(g.crop_x1, 261.0 * 640 / 298, 1e-12);
    EXPECT_NEAR(g.crop_y0, 0.0, 1e-12);
    EXPECT_NEAR(g.crop_y1, 480.0, 1e-12);
    // Portrait: 300 x 451 -> 224 x 336, top = round(112 / 2) = 56.
    std::vector<uint8_t> tall(300 * 451, 5);
    preprocess(make_image(300, 451, io::PixelMode::kGray, tall), 224, &g);
    EXPECT_EQ(g.resized_width, 224);
    EXPECT_EQ(g.resized_height, 336);
    EXPECT_EQ(g.crop_left, 0);
    EXPECT_EQ(g.crop_top, 56);
}

// With the height unchanged only the horizontal pass runs, so the result must
// equal the kernel formula evaluated in double precision and rounded: the
// 22-bit fixed-point weights err by far less than half a level (tolerance 0).
TEST(Preprocess, HorizontalPassMatchesKernelFormula) {
    const int in_w = 23, out_w = 7;
    std::mt19937 rng(11);
    std::vector<uint8_t> px(in_w);
    for (auto& v : px) v = static_cast<uint8_t>(rng() % 256);
    const io::DecodedImage out =
        resize_bicubic(make_image(in_w, 1, io::PixelMode::kGray, px), out_w, 1);
    auto kernel = [](double x) {
        x = std::fabs(x);
        if (x < 1) return (1.5 * x - 2.5) * x * x + 1;
        if (x < 2) return ((-0.5 * x + 2.5) * x - 4) * x + 2;
        return 0.0;
    };
    const double scale = double(in_w) / out_w;
    for (int o = 0; o < out_w; ++o) {
        const double center = (o + 0.5) * scale;
        double sum = 0, norm = 0;
        for (int i = 0; i < in_w; ++i) {
            const double w = kernel((i + 0.5 - center) / scale);
            sum += w * px[i];
            norm += w;
        }
        const double expected = std::clamp(std::floor(sum / norm + 0.5), 0.0, 255.0);
        EXPECT_EQ(out.pixels[o], expected) << "output " << o;
    }
}

// Pillow resizes RGBA premultiplied, so colour hidden under alpha 0 cannot
// bleed into visible pixels, and fully transparent pixels come out black.
TEST(Preprocess, RgbaIsResizedPremultiplied) {
    std::vector<uint8_t> px;
    for (int x = 0; x < 16; ++x) {
        if (x < 8)
            px.insert(px.end(), {255, 0, 0, 0});  // invisible red
        else
            px.insert(px.end(), {0, 0, 255, 255});  // opaque blue
    }
    const io::DecodedImage out = resize_bicubic(make_image(16, 1, io::PixelMode::kRgba, px), 4, 1);
    for (int x = 0; x < 4; ++x) {
        const uint8_t* p = &out.pixels[4 * x];
        EXPECT_EQ(p[0], 0) << "red leaked into pixel " << x;
        if (p[3] == 0) {
            EXPECT_EQ(p[2], 0) << x;
        }
    }
    EXPECT_EQ(out.pixels[3], 0);     // leftmost stays transparent
    EXPECT_EQ(out.pixels[15], 255);  // rightmost stays opaque
    EXPECT_EQ(out.pixels[14], 255);
}

// Palette and 1-bit images are resized NEAREST by Pillow: no new colours.
TEST(Preprocess, NearestOnlyImagesPickSourcePixels) {
    std::vector<uint8_t> px(8 * 8);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i);
    io::DecodedImage image = make_image(8, 8, io::PixelMode::kGray, px);
    image.nearest_only = true;
    const io::DecodedImage out = resize_bicubic(image, 4, 4);
    // Source index of output k: int((k + 0.5) * 2) = 2k + 1.
    for (int y = 0; y < 4; ++y) {
        for (int x = 0; x < 4; ++x) EXPECT_EQ(out.pixels[y * 4 + x], (2 * y + 1) * 8 + 2 * x + 1);
    }
}

// resize_crop computes only the crop of the shorter-side resize. Every output
// pixel of Pillow's two passes depends on its own coordinates alone, so the
// crop must equal the full resize cropped, bit for bit (tolerance 0), for
// landscape and portrait images, with and without alpha, and for NEAREST.
TEST(Preprocess, CropOfTheResizeEqualsTheFullResizeCropped) {
    struct Case {
        int w, h;
        io::PixelMode mode;
        bool nearest;
        int size;
    };
    const Case cases[] = {
        {150, 100, io::PixelMode::kRgb, false, 24},   // landscape, both passes
        {100, 150, io::PixelMode::kRgba, false, 24},  // portrait, premultiplied
        {61, 24, io::PixelMode::kGrayAlpha, false, 24},  // height unchanged
        {24, 61, io::PixelMode::kGray, false, 24},    // width unchanged
        {45, 17, io::PixelMode::kRgb, false, 40},     // enlarged
        {90, 33, io::PixelMode::kRgb, true, 20},      // palette: NEAREST
    };
    std::mt19937 rng(5);
    for (const Case& c : cases) {
        std::vector<uint8_t> px(size_t(c.w) * c.h * io::channel_count(c.mode));
        for (auto& v : px) v = static_cast<uint8_t>(rng() % 256);
        io::DecodedImage image = make_image(c.w, c.h, c.mode, px);
        image.nearest_only = c.nearest;
        PreprocessGeometry g;
        const io::RgbImage crop = resize_crop(image, c.size, &g);
        const io::RgbImage full =
            io::to_rgb(resize_bicubic(image, g.resized_width, g.resized_height));
        ASSERT_EQ(crop.width, c.size);
        ASSERT_EQ(crop.height, c.size);
        for (int y = 0; y < c.size; ++y) {
            for (int x = 0; x < c.size; ++x) {
                for (int k = 0; k < 3; ++k) {
                    const size_t at = (size_t(y + g.crop_top) * full.width + x + g.crop_left) * 3;
                    ASSERT_EQ(crop.rgb[(size_t(y) * c.size + x) * 3 + k], full.rgb[at + k])
                        << c.w << "x" << c.h << " at " << x << "," << y << " channel " << k;
                }
            }
        }
    }
}

// A 1 x 1,000,000 image (1 MB, or a few kilobytes as a PNG) resized to 240 on
// its short side would be 240 x 240,000,000 pixels; only the 240 x 240 crop
// may be computed, so this must finish quickly in little memory. The crop's
// footprint is one source pixel wide and 240 / 240 = 1 source pixel tall,
// centred (tolerance 1e-6 pixels).
TEST(Preprocess, ExtremelyElongatedImageIsCroppedWithoutResizingAll) {
    const int tall = 1000000;
    std::vector<uint8_t> px(tall);
    for (int y = 0; y < tall; ++y) px[y] = static_cast<uint8_t>(y % 251);
    PreprocessGeometry g;
    const FloatArray out = preprocess(make_image(1, tall, io::PixelMode::kGray, px), 240, &g);
    EXPECT_EQ(out.shape, (std::vector<int64_t>{3, 240, 240}));
    EXPECT_EQ(g.resized_width, 240);
    EXPECT_EQ(g.resized_height, 240 * tall);
    EXPECT_NEAR(g.crop_x0, 0.0, 1e-6);
    EXPECT_NEAR(g.crop_x1, 1.0, 1e-6);
    EXPECT_NEAR(g.crop_y0, tall / 2 - 0.5, 1e-6);
    EXPECT_NEAR(g.crop_y1, tall / 2 + 0.5, 1e-6);
    // The same through the other axis.
    const FloatArray wide = preprocess(make_image(tall, 1, io::PixelMode::kGray, px), 240, &g);
    EXPECT_EQ(wide.shape, (std::vector<int64_t>{3, 240, 240}));
    EXPECT_NEAR(g.crop_x0, tall / 2 - 0.5, 1e-6);
    EXPECT_NEAR(g.crop_y1, 1.0, 1e-6);
}

// The resized long side must fit an int; beyond it the image is refused with
// an IoError naming its size, not a silent overflow.
TEST(Preprocess, ResizedSideBeyondIntRangeIsAnError) {
    EXPECT_THROW(shorter_side_size(1, 1 << 20, 4096), IoError);
    EXPECT_EQ(shorter_side_size(1, 1 << 20, 240).height, 240 << 20);
}

TEST(Preprocess, NormalizationUsesClipConstants) {
    io::RgbImage rgb;
    rgb.width = 1;
    rgb.height = 1;
    rgb.rgb = {0, 128, 255};
    const FloatArray out = normalize_rgb(rgb);
    EXPECT_NEAR(out.values[0], (0.0 - 0.48145466) / 0.26862954, 1e-6);
    EXPECT_NEAR(out.values[1], (128.0 / 255 - 0.4578275) / 0.26130258, 1e-6);
    EXPECT_NEAR(out.values[2], (1.0 - 0.40821073) / 0.27577711, 1e-6);
}

TEST(Preprocess, MissingFileRaisesIoError) {
    EXPECT_THROW(preprocess_file(kRepo + "/data/no-such-image.png", 240), IoError);
}

// Parity with OpenCLIP on real MVTec AD images: the golden file holds the
// normalised pixels Pillow + torchvision produced. Un-normalised, ours must
// lie within 1/255 of them (max abs difference over every pixel).
void expect_golden_pixels(const std::string& group_paths, const std::string& group_pixels) {
    io::H5File golden(kGolden, io::H5File::Mode::kRead);
    const std::vector<std::string> paths = golden.read_strings(group_paths);
    const FloatArray reference = golden.read_float(group_pixels);
    ASSERT_EQ(reference.shape.size(), 4u);
    ASSERT_EQ(reference.shape[0], static_cast<int64_t>(paths.size()));
    const int size = static_cast<int>(reference.shape[2]);
    const size_t plane = size_t(size) * size;
    double worst = 0;
    size_t exact = 0, total = 0;
    for (size_t n = 0; n < paths.size(); ++n) {
        const FloatArray ours = preprocess_file(kRepo + "/data/" + paths[n], size);
        ASSERT_EQ(ours.shape, (std::vector<int64_t>{3, size, size}));
        for (int c = 0; c < 3; ++c) {
            for (size_t i = 0; i < plane; ++i) {
                const size_t at = c * plane + i;
                const double a = ours.values[at] * kClipStd[c] + kClipMean[c];
                const double b = reference.values[n * 3 * plane + at] * kClipStd[c] + kClipMean[c];
                const double d = std::fabs(a - b);
                worst = std::max(worst, d);
                exact += d < 1e-6;
                ++total;
            }
        }
    }
    EXPECT_LE(worst, 1.0 / 255) << group_pixels << ": max |ours - golden| un-normalised";
    // Beyond the required tolerance: the integer pipeline reproduces Pillow bit
    // for bit, so every sample agrees to 1e-6. A drift here (still inside
    // 1/255) means a rounding step of the resampler changed.
    EXPECT_EQ(exact, total) << group_pixels << ": samples differing by more than 1e-6";
    // Reported so regressions in exactness are visible in the test log.
    std::printf("%s: max abs diff %.3g (un-normalised), %zu of %zu samples equal to 1e-6\n",
                group_pixels.c_str(), worst, exact, total);
}

TEST(Preprocess, GoldenImagesMatchOpenClipWithinOneLevel) {
    expect_golden_pixels("images/paths", "images/pixels");
}

TEST(Preprocess, BatchStacksImagesInOrder) {
    const std::vector<std::string> paths = {kRepo + "/data/mvtec_sample/screw/train/good/000.png",
                                            kRepo + "/data/mvtec_sample/bottle/train/good/000.png"};
    std::vector<PreprocessGeometry> geometry;
    const FloatArray batch = preprocess_files(paths, 32, &geometry);
    ASSERT_EQ(batch.shape, (std::vector<int64_t>{2, 3, 32, 32}));
    ASSERT_EQ(geometry.size(), 2u);
    EXPECT_EQ(geometry[0].width, 1024);
    EXPECT_EQ(geometry[1].width, 900);
    const FloatArray second = preprocess_file(paths[1], 32);
    EXPECT_TRUE(
        std::equal(second.values.begin(), second.values.end(), batch.values.begin() + 3 * 32 * 32));
}

TEST(Preprocess, GoldenReferenceImagesMatchOpenClipWithinOneLevel) {
    expect_golden_pixels("few_shot_k3/reference_paths", "few_shot_k3/reference_pixels");
}

}  // namespace
}  // namespace winclip::clip
