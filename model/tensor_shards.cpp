#include "model/tensor_shards.h"

#include <algorithm>
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
void for_each_full_block(Communicator& comm, const TensorSpec& spec, const T* local, size_t max_elements,
                         const std::function<void(const TensorBlock<T>&)>& sink) {
  const int lc = spec.local_cols;
  if (spec.shard == Shard::Replicated) {  // every rank holds it whole: blocks of its rows
    const int step = static_cast<int>(
        std::clamp<size_t>(max_elements / static_cast<size_t>(spec.cols), 1, static_cast<size_t>(spec.rows)));
    for (int r0 = 0; r0 < spec.rows; r0 += step)
      sink({r0, std::min(step, spec.rows - r0), 0, spec.cols, local + static_cast<size_t>(r0) * spec.cols});
    return;
  }
  const int tp = comm.size(Group::TP);
  const int step = static_cast<int>(
      std::clamp<size_t>(max_elements / (static_cast<size_t>(lc) * tp), 1, static_cast<size_t>(spec.local_rows)));
  std::vector<T> all;
  for (int a = 0; a < spec.local_rows; a += step) {  // local rows [a, b) of every rank
    const int b = std::min(spec.local_rows, a + step);
    const size_t n = static_cast<size_t>(b - a) * lc;
    all.resize(n * tp);
    comm.all_gather(local + static_cast<size_t>(a) * lc, n, all.data(), Group::TP);
    for (int rank = 0; rank < tp; ++rank)
      spec.for_each_row_run(rank, a, b, [&](int lr, int row0, int rows) {
        sink({row0, rows, spec.global_col(0, rank), lc, all.data() + rank * n + static_cast<size_t>(lr - a) * lc});
      });
  }
}

template <typename T>
std::vector<T> gather_full_tensor(Communicator& comm, const TensorSpec& spec, const T* local) {
  std::vector<T> full(static_cast<size_t>(spec.rows) * spec.cols);
  for_each_full_block<T>(comm, spec, local, static_cast<size_t>(-1), [&](const TensorBlock<T>& blk) {
    for (int r = 0; r < blk.rows; ++r)
      std::copy(blk.data + static_cast<size_t>(r) * blk.cols, blk.data + static_cast<size_t>(r + 1) * blk.cols,
                full.begin() + static_cast<size_t>(blk.row0 + r) * spec.cols + blk.col0);
  });
  return full;
}

template <typename T>
void slice_of_full_tensor(const TensorSpec& spec, const T* full, int tp_rank, T* local) {
  for (size_t i = 0; i < spec.local_size(); ++i) local[i] = T(0);
  for_each_element(spec, tp_rank, [&](size_t li, size_t fi) { local[li] = full[fi]; });
}

template void for_each_full_block<float>(Communicator&, const TensorSpec&, const float*, size_t,
                                        const std::function<void(const TensorBlock<float>&)>&);
template void for_each_full_block<double>(Communicator&, const TensorSpec&, const double*, size_t,
                                         const std::function<void(const TensorBlock<double>&)>&);
template std::vector<float> gather_full_tensor<float>(Communicator&, const TensorSpec&, const float*);
template std::vector<double> gather_full_tensor<double>(Communicator&, const TensorSpec&, const double*);
template void slice_of_full_tensor<float>(const TensorSpec&, const float*, int, float*);
template void slice_of_full_tensor<double>(const TensorSpec&, const double*, int, double*);

}  // namespace lora
