#include "comm/host_staged_communicator.h"

namespace lora {

template <typename T, typename Collective>
void HostStagedCommunicator::staged(T* buf, size_t n, Group g, Collective run) {
  if (n == 0) return;
  const size_t bytes = n * sizeof(T);
  if (send_.size() < bytes) send_.resize(bytes);
  T* host = reinterpret_cast<T*>(send_.data());
  memory_.to_host(host, buf, bytes);
  run(host);
  memory_.to_device(buf, host, bytes);
  count(g, bytes);
}

template <typename T>
void HostStagedCommunicator::staged_gather(const T* send, size_t n, T* recv, Group g) {
  if (n == 0) return;
  const size_t bytes = n * sizeof(T), all = bytes * static_cast<size_t>(size(g));
  if (send_.size() < bytes) send_.resize(bytes);
  if (recv_.size() < all) recv_.resize(all);
  T* host_send = reinterpret_cast<T*>(send_.data());
  T* host_recv = reinterpret_cast<T*>(recv_.data());
  memory_.to_host(host_send, send, bytes);
  host_.all_gather(host_send, n, host_recv, g);
  memory_.to_device(recv, host_recv, all);
  count(g, all);  // as the MPI communicator counts a gather: every rank's block
}

void HostStagedCommunicator::all_reduce_sum(float* buf, size_t n, Group g, Stream) {
  staged(buf, n, g, [&](float* h) { host_.all_reduce_sum(h, n, g); });
}
void HostStagedCommunicator::all_reduce_sum(double* buf, size_t n, Group g, Stream) {
  staged(buf, n, g, [&](double* h) { host_.all_reduce_sum(h, n, g); });
}
void HostStagedCommunicator::all_reduce_max(float* buf, size_t n, Group g, Stream) {
  staged(buf, n, g, [&](float* h) { host_.all_reduce_max(h, n, g); });
}
void HostStagedCommunicator::all_reduce_max(double* buf, size_t n, Group g, Stream) {
  staged(buf, n, g, [&](double* h) { host_.all_reduce_max(h, n, g); });
}
void HostStagedCommunicator::broadcast(void* buf, size_t bytes, int root, Group g, Stream) {
  staged(static_cast<char*>(buf), bytes, g, [&](char* h) { host_.broadcast(h, bytes, root, g); });
}
void HostStagedCommunicator::all_gather(const float* send, size_t n, float* recv, Group g, Stream) {
  staged_gather(send, n, recv, g);
}
void HostStagedCommunicator::all_gather(const double* send, size_t n, double* recv, Group g, Stream) {
  staged_gather(send, n, recv, g);
}

}  // namespace lora
