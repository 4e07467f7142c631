#include "data/dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "data/mvtec.h"
#include "data/visa.h"

namespace winclip::data {

namespace fs = std::filesystem;

bool is_image_file_name(const std::string& name) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto ends_with = [&](const std::string& suffix) {
        return lower.size() > suffix.size() &&
               lower.compare(lower.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return ends_with(".png") || ends_with(".jpg") || ends_with(".jpeg");
}

std::vector<std::string> list_images(const std::string& folder) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) {
        throw DatasetError("expected a folder of images at " + folder + ", found none");
    }
    std::vector<std::string> files;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.empty() || name[0] == '.') continue;  // hidden files, e.g. .DS_Store
        if (it->is_regular_file(ec) && is_image_file_name(name)) {
            files.push_back(it->path().string());
        }
    }
    if (ec) throw DatasetError("cannot list folder " + folder + ": " + ec.message());
    // std::string compares like memcmp: byte order, independent of locale.
    std::sort(files.begin(), files.end());
    return files;
}

std::unique_ptr<Dataset> open_dataset(const std::string& kind, const std::string& root,
                                      const std::string& split_csv) {
    std::error_code ec;
    if (kind != "mvtec" && kind != "visa" && kind != "folder") {
        throw ConfigError("unknown dataset kind '" + kind + "' (expected mvtec, visa or folder)");
    }
    if (!fs::is_directory(root, ec)) {
        throw DatasetError("dataset root " + root + " is not a folder (" + kind + ")");
    }
    if (kind == "mvtec") return std::make_unique<MvtecDataset>(root, /*require_masks=*/true);
    if (kind == "folder") return std::make_unique<MvtecDataset>(root, /*require_masks=*/false);
    const std::string csv =
        split_csv.empty() ? (fs::path(root) / "split_csv" / "1cls.csv").string() : split_csv;
    return std::make_unique<VisaDataset>(root, csv);
}

io::Mask load_sample_mask(const Sample& sample) {
    const io::ImageSize size = io::read_image_size(sample.image_path);
    if (sample.label == 0) {
        io::Mask mask;
        mask.width = size.width;
        mask.height = size.height;
        mask.values.assign(size_t(size.width) * size.height, 0);
        return mask;
    }
    if (sample.mask_path.empty()) {
        throw DatasetError("anomalous image " + sample.image_path +
                           " has no ground-truth mask, so pixel metrics cannot be computed");
    }
    io::Mask mask = io::load_mask(sample.mask_path);
    if (mask.width != size.width || mask.height != size.height) {
        throw DatasetError("mask " + sample.mask_path + " is " + std::to_string(mask.width) +
                           " x " + std::to_string(mask.height) + " but its image " +
                           sample.image_path + " is " + std::to_string(size.width) + " x " +
                           std::to_string(size.height) + " (width x height)");
    }
    return mask;
}

}  // namespace winclip::data
