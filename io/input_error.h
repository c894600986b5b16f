// Errors in the files a run reads (token shards, base weights, checkpoints, adapters) and
// the check every loaded tensor goes through. An InputError's what() starts with the file
// and names the tensor or field; lora_dist exits with kExitBadInput for it, on every rank
// (comm/collective_guard.h makes the ranks agree before any of them leaves).
#pragma once
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace lora {

// Exit status for an unusable input file (README: "Errors and exit codes").
constexpr int kExitBadInput = 3;

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Index of the first NaN or +-inf in [p, p + n), or n when every value is finite.
template <typename T>
size_t first_nonfinite(const T* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return n;
}

// Throws InputError "<file>: tensor '<tensor>' holds a non-finite value (<v>) at element <i>
// of <n>" when [p, p + n) has a NaN or an infinity.
template <typename T>
void check_finite(const T* p, size_t n, const std::string& file, const std::string& tensor) {
  const size_t i = first_nonfinite(p, n);
  if (i == n) return;
  throw InputError(file + ": tensor '" + tensor + "' holds a non-finite value (" + std::to_string(double(p[i])) +
                   ") at element " + std::to_string(i) + " of " + std::to_string(n) +
                   "; refusing to train on it");
}

}  // namespace lora
