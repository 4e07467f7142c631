#include "data/mvtec.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace winclip::data {

namespace fs = std::filesystem;

MvtecDataset::MvtecDataset(std::string root, bool require_masks)
    : Dataset(std::move(root)), require_masks_(require_masks) {}

std::vector<std::string> MvtecDataset::classes() const {
    std::error_code ec;
    std::vector<std::string> names;
    for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.empty() || name[0] == '.' || !it->is_directory(ec)) continue;
        if (fs::is_directory(it->path() / "train", ec) ||
            fs::is_directory(it->path() / "test", ec)) {
            names.push_back(name);
        }
    }
    if (ec) throw DatasetError("cannot list dataset root " + root_ + ": " + ec.message());
    if (names.empty()) {
        throw DatasetError("no classes in " + kind() + " dataset root " + root_ +
                           " (expected <class>/train/good and <class>/test folders)");
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string MvtecDataset::class_folder(const std::string& class_name) const {
    const fs::path folder = fs::path(root_) / class_name;
    std::error_code ec;
    if (class_name.empty() || !fs::is_directory(folder, ec)) {
        throw DatasetError("class '" + class_name + "' not found: no folder " + folder.string());
    }
    return folder.string();
}

std::vector<Sample> MvtecDataset::test_samples(const std::string& class_name) const {
    const fs::path test = fs::path(class_folder(class_name)) / "test";
    std::error_code ec;
    if (!fs::is_directory(test, ec)) {
        throw DatasetError("class '" + class_name + "' has no test folder " + test.string());
    }
    std::vector<std::string> defects;
    for (fs::directory_iterator it(test, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] != '.' && it->is_directory(ec)) defects.push_back(name);
    }
    if (ec) throw DatasetError("cannot list folder " + test.string() + ": " + ec.message());

    std::vector<Sample> samples;
    for (const std::string& defect : defects) {
        for (const std::string& image : list_images((test / defect).string())) {
            Sample s;
            s.image_path = image;
            s.defect_type = defect;
            s.label = defect == "good" ? 0 : 1;
            if (s.label == 1) {
                // MVTec names every mask after its image: 000.png -> 000_mask.png.
                const fs::path mask = fs::path(class_folder(class_name)) / "ground_truth" / defect /
                                      (fs::path(image).stem().string() + "_mask.png");
                if (fs::is_regular_file(mask, ec)) {
                    s.mask_path = mask.string();
                } else if (require_masks_) {
                    throw DatasetError("defect image " + image + " has no mask: expected " +
                                       mask.string());
                }
            }
            samples.push_back(std::move(s));
        }
    }
    if (samples.empty()) {
        throw DatasetError("class '" + class_name + "' has no test images under " + test.string());
    }
    std::sort(samples.begin(), samples.end(),
              [](const Sample& a, const Sample& b) { return a.image_path < b.image_path; });
    return samples;
}

std::vector<std::string> MvtecDataset::train_good(const std::string& class_name) const {
    const fs::path good = fs::path(class_folder(class_name)) / "train" / "good";
    std::error_code ec;
    if (!fs::is_directory(good, ec)) {
        throw DatasetError("class '" + class_name + "' has no folder of normal training images " +
                           good.string());
    }
    std::vector<std::string> files = list_images(good.string());
    if (files.empty()) {
        throw DatasetError("class '" + class_name + "' has no normal training images in " +
                           good.string());
    }
    return files;
}

}  // namespace winclip::data
