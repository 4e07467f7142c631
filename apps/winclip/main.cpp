// `winclip`: one executable, one subcommand per job (score, run, plan, metrics,
// bench). Subcommands register themselves; see command.h.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <new>
#include <memory>

#include "apps/winclip/command.h"
#include "core/error.h"
#include "core/log.h"

namespace winclip::cli {

std::vector<Command>& registry() {
    static std::vector<Command> commands;
    return commands;
}

}  // namespace winclip::cli

int main(int argc, char** argv) {
    using namespace winclip;
    CLI::App app{"WinCLIP / WinCLIP+ zero- and few-shot anomaly detection"};
    app.require_subcommand(1);
    app.option_defaults()->always_capture_default();
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();

    auto& commands = cli::registry();
    std::sort(commands.begin(), commands.end(),
              [](const cli::Command& a, const cli::Command& b) { return a.name < b.name; });
    std::map<CLI::App*, cli::Runner> runners;
    for (auto& command : commands) {
        CLI::App* sub = app.add_subcommand(command.name, command.description);
        sub->option_defaults()->always_capture_default();
        runners[sub] = command.setup(*sub);
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        log::set_level(log::parse_level(log_level));
        for (auto& [sub, runner] : runners) {
            if (sub->parsed()) return runner();
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "winclip: error: %s\n", e.what());
        return 2;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "winclip: error: out of memory\n");
        return 3;
    } catch (const std::exception& e) {
        // Not a typed input error: a bug or a library failure we did not foresee.
        std::fprintf(stderr, "winclip: internal error: %s\n", e.what());
        return 3;
    }
    return 1;
}
