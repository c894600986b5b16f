// A folder of output files that appears complete or not at all: the files are written into a
// temporary sibling folder (".NAME.tmp.PID"), fsync'd with it, and the folder is renamed onto
// the target. Used by `lora_dist export` (--peft and --merged).
#pragma once
#include <filesystem>
#include <functional>
#include <string>

namespace lora {

// `dir` must not exist or be an empty folder (else std::runtime_error: "exists and is not an
// empty folder"). `fill` writes its files into the temporary folder it is given (and may
// throw); each regular file in it is fsync'd, then the folder, the rename, the parent. On any
// error the temporary folder is removed and std::runtime_error names `dir` (`what`: "the
// adapter", "the merged model", for the message).
void write_folder_atomically(const std::string& dir, const std::string& what,
                             const std::function<void(const std::filesystem::path& tmp)>& fill);

}  // namespace lora
