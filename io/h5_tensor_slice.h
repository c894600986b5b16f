// Reading one TP rank's slice of a full-shape HDF5 dataset, for every Shard kind: the base
// weights and the checkpoints both store full tensors, so any layout can read them.
#pragma once
#include <algorithm>
#include <string>

#include "io/hdf5_util.h"
#include "model/param_layout.h"

namespace lora {

// Fills `local` (s.local_rows x s.local_cols) with TP rank `tp_rank`'s slice of the full
// [rows x cols] dataset: one hyperslab per run of consecutive full-tensor rows (one for
// Rows/Cols/Replicated, three for QkvRows), over the rank's columns. Padding rows are zero.
template <typename T>
void h5_read_rank_slice(hid_t ds, const std::string& path, const std::string& name, const TensorSpec& s, int tp_rank,
                        T* local) {
  std::fill(local, local + s.local_size(), T(0));
  const hsize_t col0 = static_cast<hsize_t>(s.global_col(0, tp_rank));
  for (int lr = 0; lr < s.local_rows;) {
    const int row0 = s.global_row(lr, tp_rank);
    if (row0 >= s.rows) break;
    int n = 1;
    while (lr + n < s.local_rows && s.global_row(lr + n, tp_rank) == row0 + n && row0 + n < s.rows) ++n;
    h5_read_block(ds, path, name, row0, n, col0, s.local_cols, local + static_cast<size_t>(lr) * s.local_cols);
    lr += n;
  }
}

}  // namespace lora
