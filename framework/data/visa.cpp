#include "data/visa.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace winclip::data {

namespace fs = std::filesystem;

namespace {

// Splits one CSV record (RFC 4180: fields may be quoted, "" is a quote).
// The official split files hold no quotes, but files re-saved by spreadsheet
// programs may.
std::vector<std::string> split_csv_line(const std::string& line, const std::string& csv,
                                        int line_number) {
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                fields.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                fields.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            fields.emplace_back();
        } else if (c != '\r') {
            fields.back() += c;
        }
    }
    if (quoted) {
        throw DatasetError("unterminated quoted field in " + csv + " line " +
                           std::to_string(line_number));
    }
    return fields;
}

}  // namespace

VisaDataset::VisaDataset(std::string root, std::string split_csv)
    : Dataset(std::move(root)), csv_(std::move(split_csv)) {
    std::ifstream in(csv_);
    if (!in) throw IoError("cannot open VisA split file " + csv_);
    std::string line;
    if (!std::getline(in, line)) throw DatasetError("VisA split file " + csv_ + " is empty");

    // Header: find the five columns by name.
    // Spreadsheet programs often save CSV with a UTF-8 byte-order mark.
    if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    const std::vector<std::string> header = split_csv_line(line, csv_, 1);
    const char* wanted[5] = {"object", "split", "label", "image", "mask"};
    size_t column[5];
    for (int k = 0; k < 5; ++k) {
        const auto at = std::find(header.begin(), header.end(), wanted[k]);
        if (at == header.end()) {
            throw DatasetError("VisA split file " + csv_ + " has no column '" + wanted[k] +
                               "' in its header line '" + line + "'");
        }
        column[k] = static_cast<size_t>(at - header.begin());
    }

    for (int number = 2; std::getline(in, line); ++number) {
        if (line.empty() || line == "\r") continue;
        const std::vector<std::string> f = split_csv_line(line, csv_, number);
        const std::string where = csv_ + " line " + std::to_string(number);
        auto field = [&](int k) -> const std::string& {
            if (column[k] >= f.size()) {
                throw DatasetError(where + " has " + std::to_string(f.size()) +
                                   " fields, expected a '" + wanted[k] + "' column");
            }
            return f[column[k]];
        };
        const std::string& object = field(0);
        const std::string& split = field(1);
        const std::string& label = field(2);
        const std::string& image = field(3);
        const std::string& mask = field(4);
        if (object.empty() || image.empty()) {
            throw DatasetError(where + " has an empty object or image field");
        }
        if (split != "train" && split != "test") {
            throw DatasetError(where + ": split must be train or test, got '" + split + "'");
        }
        if (label != "normal" && label != "anomaly") {
            throw DatasetError(where + ": label must be normal or anomaly, got '" + label + "'");
        }
        Row row;
        row.line = number;
        row.sample.image_path = (fs::path(root_) / image).string();
        row.sample.label = label == "anomaly" ? 1 : 0;
        row.sample.defect_type = label;
        if (row.sample.label == 1) {
            if (mask.empty()) {
                throw DatasetError(where + ": anomalous image " + image + " has no mask");
            }
            row.sample.mask_path = (fs::path(root_) / mask).string();
        }
        ClassRows& rows = classes_[object];
        if (split == "test") {
            rows.test.push_back(std::move(row));
        } else if (row.sample.label == 0) {
            // Anomalous training rows (other VisA splits) never serve as references.
            rows.train_good.push_back(std::move(row));
        }
    }
    if (classes_.empty()) throw DatasetError("VisA split file " + csv_ + " lists no images");
    auto by_path = [](const Row& a, const Row& b) {
        return a.sample.image_path < b.sample.image_path;
    };
    for (auto& [name, rows] : classes_) {
        std::sort(rows.test.begin(), rows.test.end(), by_path);
        std::sort(rows.train_good.begin(), rows.train_good.end(), by_path);
    }
}

std::vector<std::string> VisaDataset::classes() const {
    std::vector<std::string> names;
    for (const auto& entry : classes_) names.push_back(entry.first);  // std::map: sorted
    return names;
}

const VisaDataset::ClassRows& VisaDataset::rows_of(const std::string& class_name) const {
    const auto it = classes_.find(class_name);
    if (it == classes_.end()) {
        throw DatasetError("class '" + class_name + "' is not listed in VisA split file " + csv_);
    }
    return it->second;
}

namespace {
void require_file(const std::string& path, const std::string& csv, int line, const char* what) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
        throw DatasetError(std::string(what) + " " + path + " listed in " + csv + " line " +
                           std::to_string(line) + " does not exist");
    }
}
}  // namespace

std::vector<Sample> VisaDataset::test_samples(const std::string& class_name) const {
    const ClassRows& rows = rows_of(class_name);
    if (rows.test.empty()) {
        throw DatasetError("class '" + class_name + "' has no test rows in " + csv_);
    }
    std::vector<Sample> samples;
    for (const Row& row : rows.test) {
        require_file(row.sample.image_path, csv_, row.line, "image");
        if (!row.sample.mask_path.empty()) {
            require_file(row.sample.mask_path, csv_, row.line, "mask");
        }
        samples.push_back(row.sample);
    }
    return samples;
}

std::vector<std::string> VisaDataset::train_good(const std::string& class_name) const {
    const ClassRows& rows = rows_of(class_name);
    if (rows.train_good.empty()) {
        throw DatasetError("class '" + class_name + "' has no normal training rows in " + csv_);
    }
    std::vector<std::string> files;
    for (const Row& row : rows.train_good) {
        require_file(row.sample.image_path, csv_, row.line, "image");
        files.push_back(row.sample.image_path);
    }
    return files;
}

}  // namespace winclip::data
