// Publishing files so that a reader (or a rerun after a kill) sees either the
// complete old state or the complete new file, never a torn one: write under a
// temporary name in the same folder, fsync, rename over the final name, fsync
// the folder. Temporary names start with ".tmp-" and are ignored by readers.
#pragma once

#include <functional>
#include <string>

namespace winclip::cache {

// Calls `write(temp_path)` to produce the file, then publishes it at `path`.
// The temporary file is removed if `write` throws. Throws IoError naming the
// path if syncing or renaming fails.
void publish_file(const std::string& path, const std::function<void(const std::string&)>& write);

// publish_file for a text body.
void publish_text(const std::string& path, const std::string& text);

// True for the temporary names publish_file uses.
bool is_temporary_name(const std::string& file_name);

}  // namespace winclip::cache
