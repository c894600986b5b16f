// Reading one TP rank's slice of a full-shape HDF5 dataset, for every Shard kind, and writing
// full-shape datasets gathered from every rank's slice: the base weights and the checkpoints
// both store full tensors, so any layout can read them.
#pragma once
#include <algorithm>
#include <string>

#include "comm/communicator.h"
#include "io/atomic_h5_file.h"
#include "io/hdf5_util.h"
#include "model/param_layout.h"
#include "model/tensor_shards.h"

namespace lora {

// Fills `local` (s.local_rows x s.local_cols) with TP rank `tp_rank`'s slice of the full
// [rows x cols] dataset: one hyperslab per run of consecutive full-tensor rows (one for
// Rows/Cols/Replicated, three for QkvRows), over the rank's columns. Padding rows are zero.
template <typename T>
void h5_read_rank_slice(hid_t ds, const std::string& path, const std::string& name, const TensorSpec& s, int tp_rank,
                        T* local) {
  std::fill(local, local + s.local_size(), T(0));
  const hsize_t col0 = static_cast<hsize_t>(s.global_col(0, tp_rank));
  s.for_each_row_run(tp_rank, 0, s.local_rows, [&](int lr, int row0, int n) {
    h5_read_block(ds, path, name, row0, n, col0, s.local_cols, local + static_cast<size_t>(lr) * s.local_cols);
  });
}

// Collective over TP, every rank of the TP group of DP rank 0 taking part (the other DP
// replicas hold the same values and return at once): each tensor of `layout` gathered from
// the ranks' slices in `buffer`, kGatherBlockElements at a time (model/tensor_shards.h), and
// written by hyperslab into a float32 dataset of its full shape, named as the tensor, in
// `group` of `out` ("" = the file's root). `out` is the writing rank's file, null elsewhere.
inline void h5_write_gathered_tensors(Communicator& comm, const ParamLayout& layout, const float* buffer,
                                      AtomicH5File* out, const std::string& group) {
  if (comm.rank(Group::DP) != 0) return;
  for (const TensorSpec& s : layout.tensors) {
    const std::string what = group.empty() ? "'" + s.name + "'" : group + "/" + s.name;
    H5Handle ds;
    if (out)
      ds = h5_create_matrix(group.empty() ? out->file() : out->group(group), s.name, s.rows, s.cols, out->tmp_path(),
                            what);
    for_each_full_block<float>(comm, s, buffer + s.offset, kGatherBlockElements, [&](const TensorBlock<float>& b) {
      if (out) h5_write_block(ds, b.row0, b.rows, b.col0, b.cols, b.data, out->tmp_path(), what);
    });
  }
}

}  // namespace lora
