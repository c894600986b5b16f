// Making every rank agree that a local step succeeded before any of them enters the next
// collective. When one rank finds its input unusable (its slice of a base file holds a NaN,
// its token shard is truncated) and the others do not, the others would otherwise wait in a
// collective forever. `agree_on_failure` runs the local work on every rank, then one
// all-reduce (max) of a flag: if any rank failed, every rank throws, the failing ones their
// own error and the others PeerFailure, so all leave together with the same exit status.
#pragma once
#include <exception>
#include <stdexcept>
#include <string>

#include "comm/communicator.h"

namespace lora {

// Thrown on a rank whose own work succeeded while another rank's failed; that rank prints
// the message that matters. `code` is the failing rank's error class (its exit status).
struct PeerFailure : std::runtime_error {
  PeerFailure(const std::string& what, int code) : std::runtime_error(what), exit_code(code) {}
  int exit_code;
};

// Runs fn(); catches an exception of type E (the class of error every rank can report the
// same way) and makes all ranks of `g` agree. The lowest rank that failed rethrows its own
// error; every other rank throws PeerFailure, so the job prints one message, not one per
// rank. Exceptions of other types propagate at once (bugs or system failures: main aborts
// the job for them). `code` is the exit status E maps to; `what` completes "another rank
// could not ...".
template <typename E, typename Fn>
void agree_on_failure(Communicator& comm, Group g, int code, const char* what, Fn&& fn) {
  std::exception_ptr mine;
  try {
    fn();
  } catch (const E&) {
    mine = std::current_exception();
  }
  // max of (size - rank) over the failing ranks picks the lowest failing rank; 0 = none failed.
  float first = mine ? static_cast<float>(comm.size(g) - comm.rank(g)) : 0.0f;
  comm.all_reduce_max(&first, 1, g);
  if (first == 0.0f) return;
  const int first_rank = comm.size(g) - static_cast<int>(first);
  if (mine && first_rank == comm.rank(g)) std::rethrow_exception(mine);
  throw PeerFailure("rank " + std::to_string(first_rank) + " could not " + what + " (its message says why)", code);
}

}  // namespace lora
