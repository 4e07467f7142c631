// Image and mask decoding (PNG through libpng, JPEG through libjpeg-turbo).
//
// The model's preprocessing must match OpenCLIP's, which runs on Pillow. Pillow
// keeps an image in the mode the file stores it in (L, LA, RGB, RGBA, CMYK, P)
// while it resizes and crops, and converts to RGB only afterwards. For images
// with partial transparency or CMYK the order changes the result, so the
// decoder returns the stored mode (DecodedImage) and leaves the conversion to
// to_rgb(), which the preprocessing calls after cropping.
//
// The format is detected from the file's first bytes, never from its name.
// Every failure (missing file, unknown format, corrupt or truncated data)
// throws IoError naming the file and what went wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace winclip::io {

// How the pixels of a DecodedImage are laid out, named after Pillow's modes.
enum class PixelMode {
    kGray,       // "L": 1 sample per pixel
    kGrayAlpha,  // "LA": gray, alpha
    kRgb,        // "RGB": 3 samples
    kRgba,       // "RGBA": 3 colour samples, alpha (not premultiplied)
    kCmyk,       // "CMYK": 4 samples, 0 = no ink (Adobe's inverted storage already undone)
};

// Samples per pixel of a mode (1, 2, 3, 4, 4).
int channel_count(PixelMode mode);
// "L", "LA", "RGB", "RGBA", "CMYK".
const char* mode_name(PixelMode mode);

// An 8-bit image in the mode its file stores it in.
struct DecodedImage {
    int width = 0;
    int height = 0;
    PixelMode mode = PixelMode::kRgb;
    // Palette PNGs (expanded here to RGB) and 1-bit gray PNGs: Pillow opens them
    // as modes "P" and "1", which its resize() always filters with NEAREST.
    bool nearest_only = false;
    std::vector<uint8_t> pixels;  // [height, width, channel_count(mode)] interleaved

    int channels() const { return channel_count(mode); }
};

// An 8-bit RGB image.
struct RgbImage {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> rgb;  // [height, width, 3] interleaved
};

struct ImageSize {
    int width = 0;
    int height = 0;
};

// A segmentation mask: 1 where any colour sample is non-zero, else 0.
struct Mask {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> values;  // [height, width], each 0 or 1
};

enum class ImageFormat { kPng, kJpeg };

// PNG or JPEG from the leading bytes; IoError naming `name` otherwise.
ImageFormat detect_format(const std::vector<uint8_t>& bytes, const std::string& name);

// Decodes a PNG or JPEG file to 8 bits per sample in its stored mode:
//  - PNG gray 1/2/4-bit is scaled to 0..255 (as Pillow's unpackers do);
//    palette images are expanded to RGB through the palette, ignoring tRNS
//    (Pillow's convert("RGB") of a "P" image ignores transparency as well);
//    a tRNS chunk on gray or RGB images is ignored for the same reason;
//  - 16-bit PNG samples keep their high byte (v >> 8). That is what Pillow
//    does for 16-bit RGB, RGBA and gray+alpha (its RGB;16B, RGBA;16B and
//    LA;16B unpackers). Pillow opens 16-bit gray as mode "I;16"/"I" and its
//    convert("RGB") then clips every value above 255 to white, which throws
//    the image away; we take the high byte there too (documented in
//    docs/known-differences.md);
//  - JPEG with libjpeg's defaults as Pillow uses them (ISLOW DCT, fancy
//    upsampling): gray stays gray, YCbCr becomes RGB, CMYK/YCCK become CMYK
//    with Adobe's inverted storage undone (Pillow's "CMYK;I" raw mode).
// Gamma, ICC profiles and EXIF orientation are ignored, as Pillow's open() does.
DecodedImage decode_image(const std::string& path);
DecodedImage decode_image_bytes(const std::vector<uint8_t>& bytes, const std::string& name);

// Pillow's convert("RGB"): gray repeated, alpha dropped without compositing,
// CMYK through Pillow's cmyk2rgb (each channel (255 - k) - c * (255 - k) / 255).
RgbImage to_rgb(const DecodedImage& image);

// decode_image + to_rgb.
RgbImage read_rgb(const std::string& path);

// Width and height from the file header, without decoding the pixels.
ImageSize read_image_size(const std::string& path);

// Loads a segmentation mask. A pixel is anomalous (1) when any of its colour
// samples is non-zero at the file's own bit depth (16-bit values 1..255 count;
// a palette mask is judged by its palette indices, which hold class ids);
// alpha is ignored, like Pillow's convert("L") ignores it.
Mask load_mask(const std::string& path);

}  // namespace winclip::io
