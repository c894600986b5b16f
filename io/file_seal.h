// The seal of a file lora_dist writes (checkpoints, adapter.h5, merged base weights): a
// fixed header in the file's first kSealBytes (an HDF5 user block, which libhdf5 skips)
// holding the file's length and a Hash64 of every byte after the user block, plus a hash of
// the user block itself. verify_seal checks it with plain POSIX reads, so a damaged file is
// refused before libhdf5 parses a single byte of it: libhdf5 1.10 can read uninitialised
// memory or crash on corrupted metadata, and no check made *through* libhdf5 can prevent that.
//
//   offset  size  field
//        0     8  magic "LDCKSUM1"
//        8     4  seal format version (1), little-endian
//       12     4  user block size (512)
//       16     8  file length in bytes
//       24     8  Hash64 of bytes [512, length)
//       32     8  Hash64 of bytes [0, 512) with this field taken as zero
//       40   472  zero
#pragma once
#include <cstdint>
#include <string>

#include "io/input_error.h"

namespace lora {

// Size of the HDF5 user block that holds the seal (HDF5 wants a power of two >= 512).
inline constexpr uint64_t kSealBytes = 512;

// A sealed file that does not verify, or a file with no seal. what() starts with the path.
struct SealError : InputError {
  enum Kind { Unsealed, Damaged };
  SealError(Kind k, const std::string& what) : InputError(what), kind(k) {}
  Kind kind;
};

// Writes the seal into the first kSealBytes of `path`, a complete file whose first
// kSealBytes are reserved (created with an HDF5 user block of that size) and zero. Streams
// the file; throws std::runtime_error naming the path on an I/O error.
void seal_file(const std::string& path);

// True when `path` starts with the seal's magic (it claims to be sealed).
bool has_seal(const std::string& path);

// Checks the seal of `path`: magic, version, the recorded length equal to the file's size,
// the header hash and the hash of the rest. Streams the file in chunks. Throws SealError:
// Unsealed when there is no magic, Damaged for anything else.
void verify_seal(const std::string& path);

}  // namespace lora
