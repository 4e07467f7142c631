// Subcommand registry of the `winclip` executable. Each subcommand lives in its
// own cmd_<name>.cpp and registers itself with a file-scope object:
//
//   namespace {
//   struct Options { std::string in; };
//   const winclip::cli::Registration kMetrics{
//       "metrics", "Evaluate stored scores and maps",
//       [](CLI::App& app) {
//           auto opts = std::make_shared<Options>();
//           app.add_option("--in", opts->in, "HDF5 file")->required();
//           return [opts]() -> int { return run_metrics(*opts); };
//       }};
//   }
//
// `setup` adds the subcommand's flags and returns the function that runs it;
// that function returns the process exit status. Exceptions derived from
// winclip::Error are reported by main() as one clear line with exit status 2.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace winclip::cli {

using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App&)>;

struct Command {
    std::string name;
    std::string description;
    Setup setup;
};

std::vector<Command>& registry();

struct Registration {
    Registration(std::string name, std::string description, Setup setup) {
        registry().push_back({std::move(name), std::move(description), std::move(setup)});
    }
};

}  // namespace winclip::cli
