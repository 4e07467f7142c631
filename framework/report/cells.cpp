#include "report/cells.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace winclip::report {

nlohmann::json CellRecord::to_json() const {
    nlohmann::json j;
    j["id"] = id;
    j["dataset"] = dataset;
    j["class"] = class_name;
    j["backbone"] = backbone;
    j["prompt_set"] = prompt_set;
    j["method"] = method;
    j["k"] = k;
    j["seed"] = seed;
    j["switches"] = switches;
    nlohmann::json m = nlohmann::json::object();
    for (size_t i = 0; i < kMetricCount; ++i) {
        // JSON has no NaN; null stands for "undefined".
        m[kMetricNames[i]] =
            std::isnan(metrics[i]) ? nlohmann::json(nullptr) : nlohmann::json(metrics[i]);
    }
    j["metrics"] = m;
    j["status"] = status;
    j["error"] = error;
    return j;
}

CellRecord CellRecord::from_json(const nlohmann::json& j, const std::string& source) {
    CellRecord r;
    try {
        r.id = j.at("id").get<std::string>();
        r.dataset = j.at("dataset").get<std::string>();
        r.class_name = j.at("class").get<std::string>();
        r.backbone = j.at("backbone").get<std::string>();
        r.prompt_set = j.at("prompt_set").get<std::string>();
        r.method = j.at("method").get<std::string>();
        r.k = j.at("k").get<int>();
        r.seed = j.at("seed").get<int>();
        r.switches = j.at("switches").get<std::string>();
        const auto& m = j.at("metrics");
        for (size_t i = 0; i < kMetricCount; ++i) {
            const auto& v = m.at(kMetricNames[i]);
            r.metrics[i] = v.is_null() ? std::nan("") : v.get<double>();
        }
        r.status = j.at("status").get<std::string>();
        r.error = j.at("error").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
        throw IoError("malformed cell record in " + source + ": " + e.what());
    }
    if (r.status != "ok" && r.status != "failed") {
        throw IoError("cell record in " + source + " has status '" + r.status +
                      "' (expected ok or failed)");
    }
    return r;
}

std::string format_metric(double value) {
    if (std::isnan(value)) return "nan";
    return fmt::format("{:.17g}", value);
}

namespace {

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) {
        if (c == '"') q += '"';
        q += c;
    }
    return q + "\"";
}

}  // namespace

std::string cells_csv(std::vector<CellRecord> records) {
    std::sort(records.begin(), records.end(),
              [](const CellRecord& a, const CellRecord& b) { return a.id < b.id; });
    std::string out = "dataset,class,backbone,prompt_set,method,k,seed,switches";
    for (const char* name : kMetricNames) out += std::string(",") + name;
    out += ",status,error\n";
    for (const auto& r : records) {
        out += csv_field(r.dataset) + "," + csv_field(r.class_name) + "," + csv_field(r.backbone) +
               "," + csv_field(r.prompt_set) + "," + csv_field(r.method) + "," +
               std::to_string(r.k) + "," + std::to_string(r.seed) + "," + csv_field(r.switches);
        for (double v : r.metrics) out += "," + format_metric(v);
        out += "," + csv_field(r.status) + "," + csv_field(r.error) + "\n";
    }
    return out;
}

}  // namespace winclip::report
