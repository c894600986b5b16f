#include "model/tensor_shards.h"

#include <cstddef>

namespace lora {

namespace {
// Calls f(local_index, full_index) for each element TP rank `tp_rank` holds inside the full tensor.
template <typename F>
void for_each_element(const TensorSpec& s, int tp_rank, F f) {
  for (int r = 0; r < s.local_rows; ++r) {
    const int gr = s.global_row(r, tp_rank);
    if (gr >= s.rows) continue;  // padding
    for (int c = 0; c < s.local_cols; ++c)
      f(static_cast<size_t>(r) * s.local_cols + c, static_cast<size_t>(gr) * s.cols + s.global_col(c, tp_rank));
  }
}
}  // namespace

template <typename T>
std::vector<T> gather_full_tensor(Communicator& comm, const TensorSpec& spec, const T* local) {
  std::vector<T> full(static_cast<size_t>(spec.rows) * spec.cols);
  if (spec.shard == Shard::Replicated) {
    for_each_element(spec, 0, [&](size_t li, size_t fi) { full[fi] = local[li]; });
    return full;
  }
  const int tp = comm.size(Group::TP);
  const size_t n = spec.local_size();
  std::vector<T> all(n * tp);
  comm.all_gather(local, n, all.data(), Group::TP);
  for (int rank = 0; rank < tp; ++rank)
    for_each_element(spec, rank, [&](size_t li, size_t fi) { full[fi] = all[rank * n + li]; });
  return full;
}

template <typename T>
void slice_of_full_tensor(const TensorSpec& spec, const T* full, int tp_rank, T* local) {
  for (size_t i = 0; i < spec.local_size(); ++i) local[i] = T(0);
  for_each_element(spec, tp_rank, [&](size_t li, size_t fi) { local[li] = full[fi]; });
}

template std::vector<float> gather_full_tensor<float>(Communicator&, const TensorSpec&, const float*);
template std::vector<double> gather_full_tensor<double>(Communicator&, const TensorSpec&, const double*);
template void slice_of_full_tensor<float>(const TensorSpec&, const float*, int, float*);
template void slice_of_full_tensor<double>(const TensorSpec&, const double*, int, double*);

}  // namespace lora
