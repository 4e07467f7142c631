// Helpers around method::Settings (declared in pipeline.h) that the command
// line and the experiment reader share. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "winclip/pipeline.h"

namespace winclip::method {

// Names accepted by preset(), in the order they are documented.
const std::vector<std::string>& preset_names();

// Throws ConfigError when a switch is out of range; `where` names the source
// (a YAML file and key, or a command-line flag) in the message.
void validate_settings(const Settings& settings, const std::string& where);

// "raw" -> false, "normalized" -> true (the --prompt-average flag); ConfigError otherwise.
bool parse_prompt_average(const std::string& value, const std::string& where);
// The inverse: "normalized" or "raw".
std::string prompt_average_name(bool normalize_prompts);

}  // namespace winclip::method
