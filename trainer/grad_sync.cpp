#include "trainer/grad_sync.h"

#include <cmath>
#include <cstring>

namespace lora {

uint64_t all_reduce_lora_grads(Communicator& comm, float* grads, size_t replicated, size_t total) {
  const uint64_t before = comm.bytes(Group::World) + comm.bytes(Group::DP);
  comm.all_reduce_sum(grads, replicated, Group::World);
  comm.all_reduce_sum(grads + replicated, total - replicated, Group::DP);
  return comm.bytes(Group::World) + comm.bytes(Group::DP) - before;
}

double lora_grad_norm(Communicator& comm, const float* grads, size_t replicated, size_t total) {
  double rep = 0, shard = 0;
#pragma omp parallel for reduction(+ : rep) schedule(static)
  for (size_t i = 0; i < replicated; ++i) rep += static_cast<double>(grads[i]) * grads[i];
#pragma omp parallel for reduction(+ : shard) schedule(static)
  for (size_t i = replicated; i < total; ++i) shard += static_cast<double>(grads[i]) * grads[i];
  comm.all_reduce_sum(&shard, 1, Group::TP);
  return std::sqrt(rep + shard);
}

void clip_grads(float* grads, size_t n, double norm, double max_norm) {
  if (max_norm <= 0 || norm <= max_norm) return;
  const float coef = static_cast<float>(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) grads[i] *= coef;
}

bool replicated_in_sync(Communicator& comm, const float* params, size_t replicated) {
  // FNV-1a over the bytes, split into two 32-bit halves that doubles hold exactly;
  // the max and the max of the negation agree only when every rank has the same hash.
  uint64_t h = 1469598103934665603ull;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(params);
  for (size_t i = 0; i < replicated * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  double v[4] = {double(h >> 32), double(h & 0xffffffffu), -double(h >> 32), -double(h & 0xffffffffu)};
  comm.all_reduce_max(v, 4, Group::World);
  return v[0] == -v[2] && v[1] == -v[3];
}

}  // namespace lora
