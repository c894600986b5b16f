#include "trainer/train/grad_sync.h"

#include <cmath>
#include <cstring>

#include "model/ops/grad_norm.h"

namespace lora {

uint64_t all_reduce_lora_grads(Communicator& comm, float* grads, size_t replicated, size_t total) {
  const uint64_t before = comm.bytes(Group::World) + comm.bytes(Group::DP);
  comm.all_reduce_sum(grads, replicated, Group::World);
  comm.all_reduce_sum(grads + replicated, total - replicated, Group::DP);
  return comm.bytes(Group::World) + comm.bytes(Group::DP) - before;
}

uint64_t all_reduce_full_grads(Communicator& comm, float* grads, size_t total) {
  const uint64_t before = comm.bytes(Group::DP);
  comm.all_reduce_sum(grads, total, Group::DP);
  return comm.bytes(Group::DP) - before;
}

double grad_norm(Communicator& comm, const ParamLayout& layout, const float* grads) {
  double sq[2] = {0, 0};  // replicated, sharded
  for (const TensorSpec& s : layout.tensors) {
    sq[s.shard == Shard::Replicated ? 0 : 1] += sum_of_squares(grads + s.offset, s.local_size());
  }
  comm.all_reduce_sum(&sq[1], 1, Group::TP);
  return std::sqrt(sq[0] + sq[1]);
}

void clip_grads(float* grads, size_t n, double norm, double max_norm) {
  if (max_norm <= 0 || norm <= max_norm) return;
  scale_in_place(grads, n, static_cast<float>(max_norm / (norm + 1e-6)));
}

bool replicated_in_sync(Communicator& comm, const float* params, const ParamLayout& layout) {
  // FNV-1a over the bytes, split into two 32-bit halves that doubles hold exactly;
  // the max and the max of the negation agree only when every rank has the same hash.
  uint64_t h = 1469598103934665603ull;
  for (const TensorSpec& s : layout.tensors) {
    if (s.shard != Shard::Replicated) continue;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(params + s.offset);
    for (size_t i = 0; i < s.local_size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  double v[4] = {double(h >> 32), double(h & 0xffffffffu), -double(h >> 32), -double(h & 0xffffffffu)};
  comm.all_reduce_max(v, 4, Group::World);
  return v[0] == -v[2] && v[1] == -v[3];
}

}  // namespace lora
