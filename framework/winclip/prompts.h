// Compositional prompt ensembles (WinCLIP, section 4.1 and supplement Fig. 6):
// every state word list is crossed with every template, per class. Prompt sets
// live in YAML files under configs/prompts/; this header is torch-free.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace winclip::method {

// Extra state words for one class, appended after the common ones.
struct ClassStates {
    std::vector<std::string> normal;     // each holds exactly one "{}" (the object name)
    std::vector<std::string> anomalous;  // each holds exactly one "{}"
};

// One prompt set as read from YAML. Every state and template holds exactly one "{}".
struct PromptSet {
    std::string name;                                 // the file's stem, e.g. "paper"
    std::string source;                               // path it was read from (for messages)
    std::vector<std::string> normal_states;           // e.g. "flawless {}"
    std::vector<std::string> anomalous_states;        // e.g. "{} with defect"
    std::vector<std::string> templates;               // e.g. "a photo of a {}."; duplicates kept
    std::map<std::string, std::string> class_names;   // class id -> object words
    std::map<std::string, ClassStates> class_states;  // class id -> extra states
};

// The expanded prompts for one class, in the order the text encoder sees them:
// states outer (common states, then class-specific ones), templates inner.
struct PromptEnsemble {
    std::vector<std::string> normal;
    std::vector<std::string> anomalous;
};

// Resolves a prompt-set reference: a bare name without '/' and without a
// ".yaml"/".yml" suffix is a shipped set (<repo>/configs/prompts/<name>.yaml);
// anything else is a path. Throws ConfigError if a shipped name does not exist.
std::string resolve_prompt_set_path(const std::string& name_or_path);

// Names of the shipped prompt sets, sorted.
std::vector<std::string> shipped_prompt_sets();

// Reads and validates a prompt-set YAML. Throws ConfigError naming the file and
// key on unknown keys, wrong types, empty lists or placeholders other than one "{}".
PromptSet load_prompt_set(const std::string& name_or_path);

// Parses YAML text directly; `source` names it in error messages.
PromptSet parse_prompt_set(const std::string& yaml_text, const std::string& source);

// The words that stand for the class in prompts: the override if the set has
// one, otherwise the class id as given.
std::string object_name(const PromptSet& set, const std::string& class_name);

// Crosses states and templates for one class (see PromptEnsemble for the order).
PromptEnsemble expand_prompts(const PromptSet& set, const std::string& class_name);

}  // namespace winclip::method
