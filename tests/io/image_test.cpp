#include "io/image.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>

#include "core/error.h"
#include "image_writer.h"

namespace winclip::io {
namespace {

using winclip::testing::PngSpec;
using winclip::testing::TempDir;

const std::string kMvtec = std::string(WINCLIP_REPO_ROOT) + "/data/mvtec_sample";

// Expects `call` to throw IoError whose message contains every string in `parts`.
template <typename F>
void expect_io_error(F call, const std::vector<std::string>& parts) {
    try {
        call();
        FAIL() << "expected IoError";
    } catch (const IoError& e) {
        const std::string message = e.what();
        for (const auto& part : parts) {
            EXPECT_NE(message.find(part), std::string::npos)
                << "message '" << message << "' lacks '" << part << "'";
        }
    }
}

std::vector<uint16_t> ramp(size_t n, uint32_t step, uint32_t modulo) {
    std::vector<uint16_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint16_t>((i * step) % modulo);
    return v;
}

TEST(Image, Png8BitRgbRoundTripsExactly) {
    TempDir dir;
    PngSpec spec{5, 3, PNG_COLOR_TYPE_RGB, 8, false, ramp(5 * 3 * 3, 17, 256), {}, {}};
    testing::write_png(dir.file("rgb.png"), spec);
    const DecodedImage image = decode_image(dir.file("rgb.png"));
    EXPECT_EQ(image.width, 5);
    EXPECT_EQ(image.height, 3);
    EXPECT_EQ(image.mode, PixelMode::kRgb);
    EXPECT_FALSE(image.nearest_only);
    ASSERT_EQ(image.pixels.size(), spec.samples.size());
    for (size_t i = 0; i < spec.samples.size(); ++i) EXPECT_EQ(image.pixels[i], spec.samples[i]);
}

// 16-bit samples keep their high byte, as Pillow's RGB;16B unpacker does.
TEST(Image, Png16BitRgbKeepsHighByte) {
    TempDir dir;
    PngSpec spec{4, 2, PNG_COLOR_TYPE_RGB, 16, false, ramp(4 * 2 * 3, 5003, 65536), {}, {}};
    testing::write_png(dir.file("rgb16.png"), spec);
    const RgbImage rgb = read_rgb(dir.file("rgb16.png"));
    ASSERT_EQ(rgb.rgb.size(), spec.samples.size());
    for (size_t i = 0; i < spec.samples.size(); ++i) EXPECT_EQ(rgb.rgb[i], spec.samples[i] >> 8);
}

TEST(Image, Png16BitGrayKeepsHighByteAndRepeatsToRgb) {
    TempDir dir;
    PngSpec spec{3,  3,     PNG_COLOR_TYPE_GRAY,
                 16, false, {0, 1, 255, 256, 4660, 32768, 65280, 65534, 65535},
                 {}, {}};
    testing::write_png(dir.file("gray16.png"), spec);
    const DecodedImage image = decode_image(dir.file("gray16.png"));
    EXPECT_EQ(image.mode, PixelMode::kGray);
    const RgbImage rgb = to_rgb(image);
    for (size_t i = 0; i < 9; ++i) {
        for (int c = 0; c < 3; ++c) EXPECT_EQ(rgb.rgb[3 * i + c], spec.samples[i] >> 8) << i;
    }
}

// Pillow's convert("RGB") drops alpha without compositing onto any background.
TEST(Image, PngGrayAlphaDropsAlphaWithoutCompositing) {
    TempDir dir;
    // (gray, alpha) pairs; alpha 0 must not turn the pixel black or white.
    PngSpec spec{3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, {200, 0, 100, 128, 7, 255}, {}, {}};
    testing::write_png(dir.file("la.png"), spec);
    const DecodedImage image = decode_image(dir.file("la.png"));
    EXPECT_EQ(image.mode, PixelMode::kGrayAlpha);
    const RgbImage rgb = to_rgb(image);
    const std::vector<uint8_t> expected = {200, 200, 200, 100, 100, 100, 7, 7, 7};
    EXPECT_EQ(rgb.rgb, expected);
}

TEST(Image, Png16BitRgbaDropsAlpha) {
    TempDir dir;
    PngSpec spec{2,  1,     PNG_COLOR_TYPE_RGB_ALPHA,
                 16, false, {0x1234, 0xABCD, 0xFF00, 0x0000, 0x00FF, 0x8000, 0x7FFF, 0xFFFF},
                 {}, {}};
    testing::write_png(dir.file("rgba16.png"), spec);
    const DecodedImage image = decode_image(dir.file("rgba16.png"));
    EXPECT_EQ(image.mode, PixelMode::kRgba);
    const RgbImage rgb = to_rgb(image);
    const std::vector<uint8_t> expected = {0x12, 0xAB, 0xFF, 0x00, 0x80, 0x7F};
    EXPECT_EQ(rgb.rgb, expected);
}

// Palette images expand through the palette; tRNS is ignored (Pillow's
// convert("RGB") of a "P" image ignores it) and Pillow resizes them NEAREST.
TEST(Image, PngPaletteExpandsAndIgnoresTransparency) {
    TempDir dir;
    PngSpec spec{4,
                 1,
                 PNG_COLOR_TYPE_PALETTE,
                 4,
                 false,
                 {0, 1, 2, 1},
                 {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}},
                 {0, 128}};
    testing::write_png(dir.file("palette.png"), spec);
    const DecodedImage image = decode_image(dir.file("palette.png"));
    EXPECT_EQ(image.mode, PixelMode::kRgb);
    EXPECT_TRUE(image.nearest_only);
    const std::vector<uint8_t> expected = {10, 20, 30, 40, 50, 60, 70, 80, 90, 40, 50, 60};
    EXPECT_EQ(image.pixels, expected);
}

// Low bit depths scale to 0..255 (x255, x85, x17) like Pillow's "L;n" unpackers.
TEST(Image, PngLowBitDepthGrayScalesToFullRange) {
    TempDir dir;
    const struct {
        int depth;
        std::vector<uint16_t> in;
        std::vector<uint8_t> out;
    } cases[] = {{1, {0, 1, 1, 0}, {0, 255, 255, 0}},
                 {2, {0, 1, 2, 3}, {0, 85, 170, 255}},
                 {4, {0, 1, 9, 15}, {0, 17, 153, 255}}};
    for (const auto& c : cases) {
        const std::string path = dir.file("gray" + std::to_string(c.depth) + ".png");
        testing::write_png(path, PngSpec{4, 1, PNG_COLOR_TYPE_GRAY, c.depth, false, c.in, {}, {}});
        const DecodedImage image = decode_image(path);
        EXPECT_EQ(image.mode, PixelMode::kGray);
        EXPECT_EQ(image.pixels, c.out) << "bit depth " << c.depth;
        EXPECT_EQ(image.nearest_only, c.depth == 1) << "bit depth " << c.depth;
    }
}

TEST(Image, PngInterlacedDecodesLikeProgressive) {
    TempDir dir;
    PngSpec spec{13, 11, PNG_COLOR_TYPE_RGB_ALPHA, 16, false, ramp(13 * 11 * 4, 7919, 65536),
                 {}, {}};
    testing::write_png(dir.file("plain.png"), spec);
    spec.interlaced = true;
    testing::write_png(dir.file("adam7.png"), spec);
    EXPECT_EQ(decode_image(dir.file("plain.png")).pixels,
              decode_image(dir.file("adam7.png")).pixels);
}

TEST(Image, TruncatedPngRaisesIoErrorNamingFile) {
    TempDir dir;
    testing::write_png(
        dir.file("whole.png"),
        PngSpec{32, 32, PNG_COLOR_TYPE_RGB, 8, false, ramp(32 * 32 * 3, 31, 256), {}, {}});
    std::vector<uint8_t> bytes = testing::read_bytes(dir.file("whole.png"));
    bytes.resize(bytes.size() / 2);
    testing::write_bytes(dir.file("cut.png"), bytes);
    expect_io_error([&] { decode_image(dir.file("cut.png")); }, {dir.file("cut.png"), "PNG"});
    expect_io_error([&] { load_mask(dir.file("cut.png")); }, {dir.file("cut.png")});
}

// CRC-32 of PNG chunks (ISO 3309), so a forged header passes libpng's check.
uint32_t png_crc(const uint8_t* data, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        crc ^= data[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

// A valid 16 x 16 PNG whose IHDR (with a correct CRC) claims 16384 x 16384
// 16-bit RGBA: 2 GiB of pixels from a file of a few hundred bytes. The decoder
// must see that the compressed data cannot hold them and fail before reserving
// the memory, naming the file and the claimed size.
TEST(Image, PngHeaderClaimingMorePixelsThanItsDataCanHoldIsRefused) {
    TempDir dir;
    testing::write_png(dir.file("small.png"), PngSpec{16, 16, PNG_COLOR_TYPE_RGB_ALPHA, 16, false,
                                                      ramp(16 * 16 * 4, 997, 65536), {}, {}});
    std::vector<uint8_t> bytes = testing::read_bytes(dir.file("small.png"));
    ASSERT_EQ(std::string(bytes.begin() + 12, bytes.begin() + 16), "IHDR");
    for (size_t at : {size_t{16}, size_t{20}}) {  // width, height: 16384 big-endian
        bytes[at] = 0;
        bytes[at + 1] = 0;
        bytes[at + 2] = 0x40;
        bytes[at + 3] = 0;
    }
    const uint32_t crc = png_crc(bytes.data() + 12, 4 + 13);
    for (int k = 0; k < 4; ++k) bytes[29 + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
    testing::write_bytes(dir.file("forged.png"), bytes);
    expect_io_error([&] { decode_image(dir.file("forged.png")); },
                    {dir.file("forged.png"), "16384 x 16384"});
    expect_io_error([&] { load_mask(dir.file("forged.png")); },
                    {dir.file("forged.png"), "16384 x 16384"});
}

// The bound used above must not refuse real files: an all-zero image
// compresses about as well as deflate allows (close to 1000:1).
TEST(Image, MaximallyCompressiblePngStillDecodes) {
    TempDir dir;
    const int side = 2048;
    testing::write_png(dir.file("zeros.png"),
                       PngSpec{side, side, PNG_COLOR_TYPE_GRAY, 8, false,
                               std::vector<uint16_t>(size_t(side) * side, 0), {}, {}});
    const DecodedImage image = decode_image(dir.file("zeros.png"));
    EXPECT_EQ(image.width, side);
    EXPECT_EQ(image.height, side);
    EXPECT_TRUE(std::all_of(image.pixels.begin(), image.pixels.end(),
                            [](uint8_t v) { return v == 0; }));
}

TEST(Image, CorruptPngDataRaisesIoError) {
    TempDir dir;
    testing::write_png(dir.file("whole.png"),
                       PngSpec{16, 16, PNG_COLOR_TYPE_GRAY, 8, false, ramp(256, 3, 256), {}, {}});
    std::vector<uint8_t> bytes = testing::read_bytes(dir.file("whole.png"));
    bytes[bytes.size() - 20] ^= 0x5A;  // inside the IDAT payload or its CRC
    testing::write_bytes(dir.file("bad.png"), bytes);
    expect_io_error([&] { decode_image(dir.file("bad.png")); }, {dir.file("bad.png")});
}

TEST(Image, UnknownMissingAndEmptyFilesRaiseIoError) {
    TempDir dir;
    std::mt19937 rng(3);
    std::vector<uint8_t> noise(1000);
    for (auto& b : noise) b = static_cast<uint8_t>(rng());
    noise[0] = 0x42;  // not 0x89 or 0xFF, whatever the generator drew
    testing::write_bytes(dir.file("noise.png"), noise);
    expect_io_error([&] { decode_image(dir.file("noise.png")); },
                    {dir.file("noise.png"), "unknown image format"});
    expect_io_error([&] { read_image_size(dir.file("noise.png")); }, {dir.file("noise.png")});
    testing::write_bytes(dir.file("empty.jpg"), {});
    expect_io_error([&] { decode_image(dir.file("empty.jpg")); }, {dir.file("empty.jpg"), "empty"});
    expect_io_error([&] { decode_image(dir.file("missing.png")); }, {dir.file("missing.png")});
}

// Damaged files must end in a decoded image or an IoError, never in a crash
// or another exception: libpng and libjpeg report errors by longjmp, which
// the decoder has to catch without leaking or corrupting state.
TEST(Image, RandomlyDamagedFilesDecodeOrRaiseIoError) {
    TempDir dir;
    testing::write_png(
        dir.file("src.png"),
        PngSpec{24, 17, PNG_COLOR_TYPE_RGB_ALPHA, 8, true, ramp(24 * 17 * 4, 13, 256), {}, {}});
    std::vector<uint8_t> rgb(24 * 17 * 3);
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 11);
    testing::write_jpeg(dir.file("src.jpg"), 24, 17, 3, rgb, 80);
    std::mt19937 rng(5);
    for (const char* name : {"src.png", "src.jpg"}) {
        const std::vector<uint8_t> original = testing::read_bytes(dir.file(name));
        for (int trial = 0; trial < 150; ++trial) {
            std::vector<uint8_t> bytes = original;
            const int flips = 1 + static_cast<int>(rng() % 4);
            for (int f = 0; f < flips; ++f) {
                bytes[3 + rng() % (bytes.size() - 3)] = static_cast<uint8_t>(rng());
            }
            if (rng() % 3 == 0) bytes.resize(3 + rng() % (bytes.size() - 3));
            const std::string path = dir.file("damaged");
            testing::write_bytes(path, bytes);
            try {
                const DecodedImage image = decode_image(path);
                EXPECT_EQ(image.pixels.size(),
                          size_t(image.width) * image.height * image.channels());
                load_mask(path);
            } catch (const IoError& e) {
                EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
            }
        }
    }
}

// The format comes from the magic bytes: a PNG named .jpg still decodes.
TEST(Image, FormatIsDetectedFromContentNotExtension) {
    TempDir dir;
    testing::write_png(dir.file("really_png.jpg"),
                       PngSpec{2, 2, PNG_COLOR_TYPE_GRAY, 8, false, {1, 2, 3, 4}, {}, {}});
    const DecodedImage image = decode_image(dir.file("really_png.jpg"));
    EXPECT_EQ(image.pixels, (std::vector<uint8_t>{1, 2, 3, 4}));
}

// A smooth image survives JPEG at quality 95 to within a few levels.
TEST(Image, JpegRgbRoundTripsWithinTolerance) {
    TempDir dir;
    const int w = 40, h = 24;
    std::vector<uint8_t> pixels(w * h * 3);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            pixels[(y * w + x) * 3 + 0] = static_cast<uint8_t>(40 + 4 * x);
            pixels[(y * w + x) * 3 + 1] = static_cast<uint8_t>(30 + 5 * y);
            pixels[(y * w + x) * 3 + 2] = static_cast<uint8_t>(128);
        }
    }
    testing::write_jpeg(dir.file("smooth.jpg"), w, h, 3, pixels, 95);
    const DecodedImage image = decode_image(dir.file("smooth.jpg"));
    EXPECT_EQ(image.mode, PixelMode::kRgb);
    ASSERT_EQ(image.pixels.size(), pixels.size());
    int worst = 0;
    for (size_t i = 0; i < pixels.size(); ++i) {
        worst = std::max(worst, std::abs(int(image.pixels[i]) - int(pixels[i])));
    }
    EXPECT_LE(worst, 6) << "max abs difference after JPEG q95 (tolerance 6 levels)";
    const ImageSize size = read_image_size(dir.file("smooth.jpg"));
    EXPECT_EQ(size.width, w);
    EXPECT_EQ(size.height, h);
}

TEST(Image, JpegGrayStaysGrayAndRepeatsToRgb) {
    TempDir dir;
    std::vector<uint8_t> pixels(16 * 16);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(60 + i / 4);
    testing::write_jpeg(dir.file("gray.jpg"), 16, 16, 1, pixels, 98);
    const DecodedImage image = decode_image(dir.file("gray.jpg"));
    EXPECT_EQ(image.mode, PixelMode::kGray);
    const RgbImage rgb = to_rgb(image);
    int worst = 0;
    for (size_t i = 0; i < pixels.size(); ++i) {
        EXPECT_EQ(rgb.rgb[3 * i], rgb.rgb[3 * i + 2]);
        worst = std::max(worst, std::abs(int(rgb.rgb[3 * i]) - int(pixels[i])));
    }
    EXPECT_LE(worst, 3) << "max abs difference after JPEG q98 (tolerance 3 levels)";
}

// libjpeg tags CMYK output with an Adobe marker; such files store inverted
// ink (Photoshop's convention), which Pillow undoes ("CMYK;I") and so do we.
// cmyk2rgb then gives (255 - k) - c * (255 - k) / 255 per channel.
TEST(Image, JpegCmykWithAdobeMarkerIsInvertedThenConverted) {
    TempDir dir;
    const std::vector<uint8_t> stored = {255, 205, 155, 225};  // one flat colour
    std::vector<uint8_t> pixels;
    for (int i = 0; i < 64; ++i) pixels.insert(pixels.end(), stored.begin(), stored.end());
    testing::write_jpeg(dir.file("cmyk.jpg"), 8, 8, 4, pixels, 100);
    const DecodedImage image = decode_image(dir.file("cmyk.jpg"));
    EXPECT_EQ(image.mode, PixelMode::kCmyk);
    // Ink after inversion: c=0, m=50, y=100, k=30; nk = 225.
    // r = 225 - 0 = 225, g = 225 - 50*225/255 (44) = 181, b = 225 - 88 = 137.
    const RgbImage rgb = to_rgb(image);
    const int expected[3] = {225, 181, 137};
    for (int c = 0; c < 3; ++c) {
        EXPECT_NEAR(rgb.rgb[c], expected[c], 2) << "channel " << c << " (tolerance 2 levels)";
    }
}

TEST(Image, TruncatedJpegRaisesIoErrorNamingFile) {
    TempDir dir;
    std::vector<uint8_t> pixels(64 * 64 * 3);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
    testing::write_jpeg(dir.file("whole.jpg"), 64, 64, 3, pixels, 90);
    std::vector<uint8_t> bytes = testing::read_bytes(dir.file("whole.jpg"));
    bytes.resize(bytes.size() / 2);
    testing::write_bytes(dir.file("cut.jpg"), bytes);
    expect_io_error([&] { decode_image(dir.file("cut.jpg")); }, {dir.file("cut.jpg"), "truncated"});
    bytes.resize(40);  // inside the header
    testing::write_bytes(dir.file("header.jpg"), bytes);
    expect_io_error([&] { decode_image(dir.file("header.jpg")); }, {dir.file("header.jpg")});
}

TEST(Image, ReadImageSizeReadsPngHeader) {
    TempDir dir;
    testing::write_png(dir.file("wide.png"),
                       PngSpec{7, 3, PNG_COLOR_TYPE_GRAY, 8, false, ramp(21, 1, 256), {}, {}});
    const ImageSize size = read_image_size(dir.file("wide.png"));
    EXPECT_EQ(size.width, 7);
    EXPECT_EQ(size.height, 3);
}

// Any non-zero colour sample is anomalous, at the file's own bit depth.
TEST(Image, MaskMarksAnyNonZeroSample) {
    TempDir dir;
    testing::write_png(dir.file("m16.png"),
                       PngSpec{4, 1, PNG_COLOR_TYPE_GRAY, 16, false, {0, 1, 255, 65535}, {}, {}});
    EXPECT_EQ(load_mask(dir.file("m16.png")).values, (std::vector<uint8_t>{0, 1, 1, 1}));

    testing::write_png(dir.file("m8.png"),
                       PngSpec{3, 2, PNG_COLOR_TYPE_GRAY, 8, false, {0, 255, 0, 7, 0, 1}, {}, {}});
    const Mask m8 = load_mask(dir.file("m8.png"));
    EXPECT_EQ(m8.width, 3);
    EXPECT_EQ(m8.height, 2);
    EXPECT_EQ(m8.values, (std::vector<uint8_t>{0, 1, 0, 1, 0, 1}));

    // Colour in any channel counts; alpha alone does not.
    testing::write_png(dir.file("rgba.png"), PngSpec{3,
                                                     1,
                                                     PNG_COLOR_TYPE_RGB_ALPHA,
                                                     8,
                                                     false,
                                                     {0, 0, 0, 255, 0, 0, 9, 255, 0, 3, 0, 0},
                                                     {},
                                                     {}});
    EXPECT_EQ(load_mask(dir.file("rgba.png")).values, (std::vector<uint8_t>{0, 1, 1}));

    // Palette masks are judged by index (class ids), whatever colour index 0 has.
    testing::write_png(dir.file("pal.png"), PngSpec{3,
                                                    1,
                                                    PNG_COLOR_TYPE_PALETTE,
                                                    8,
                                                    false,
                                                    {0, 2, 1},
                                                    {{255, 255, 255}, {0, 0, 0}, {1, 2, 3}},
                                                    {}});
    EXPECT_EQ(load_mask(dir.file("pal.png")).values, (std::vector<uint8_t>{0, 1, 1}));
}

TEST(Image, RealMvtecImagesDecode) {
    const std::string image = kMvtec + "/bottle/test/broken_small/000.png";
    const std::string mask = kMvtec + "/bottle/ground_truth/broken_small/000_mask.png";
    const DecodedImage bottle = decode_image(image);
    EXPECT_EQ(bottle.mode, PixelMode::kRgb);
    EXPECT_EQ(bottle.width, 900);
    EXPECT_EQ(bottle.height, 900);
    const ImageSize size = read_image_size(image);
    EXPECT_EQ(size.width, 900);
    const Mask m = load_mask(mask);
    ASSERT_EQ(m.width, 900);
    ASSERT_EQ(m.height, 900);
    const auto anomalous = std::count(m.values.begin(), m.values.end(), 1);
    EXPECT_GT(anomalous, 0);
    EXPECT_LT(anomalous, 900 * 900 / 2);
    // Screw images are 8-bit gray in the real dataset.
    EXPECT_EQ(decode_image(kMvtec + "/screw/train/good/000.png").mode, PixelMode::kGray);
}

}  // namespace
}  // namespace winclip::io
