// for_each_full_block (model/tensor_shards.h) on real ranks: 4 ranks split as tp 1, 2 and 4,
// every kind of shard (replicated, rows with vocabulary padding, columns, fused q|k|v rows),
// block limits from 1 element to unlimited. Checks that the blocks cover every element of
// the full tensor exactly once with its value, that no block reaches a padding row, and that
// no gather moves more than the limit (or one local row of each rank, when that is more).
// This is what checkpoints and model.h5 are written from, 16 MiB at a time.
//   mpirun -np 4 --oversubscribe gather_blocks
// Prints one line per case and "N passed, N failed"; exits non-zero on any failure.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "model/tensor_shards.h"

namespace {

using namespace lora;

// Counts the elements each all-gather moves, to check the block limit.
class CountingComm final : public Communicator {
 public:
  explicit CountingComm(MpiCommunicator& inner) : inner_(inner) {}
  int rank(Group g) const override { return inner_.rank(g); }
  int size(Group g) const override { return inner_.size(g); }
  void all_reduce_sum(float* b, size_t n, Group g, Stream s) override { inner_.all_reduce_sum(b, n, g, s); }
  void all_reduce_sum(double* b, size_t n, Group g, Stream s) override { inner_.all_reduce_sum(b, n, g, s); }
  void all_reduce_max(float* b, size_t n, Group g, Stream s) override { inner_.all_reduce_max(b, n, g, s); }
  void all_reduce_max(double* b, size_t n, Group g, Stream s) override { inner_.all_reduce_max(b, n, g, s); }
  void broadcast(void* b, size_t bytes, int root, Group g, Stream s) override { inner_.broadcast(b, bytes, root, g, s); }
  void all_gather(const float* send, size_t n, float* recv, Group g, Stream s) override {
    largest = std::max(largest, n * static_cast<size_t>(size(g)));
    inner_.all_gather(send, n, recv, g, s);
  }
  void all_gather(const double* send, size_t n, double* recv, Group g, Stream s) override {
    inner_.all_gather(send, n, recv, g, s);
  }
  void barrier(Group g) override { inner_.barrier(g); }
  size_t largest = 0;

 private:
  MpiCommunicator& inner_;
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int world = 0, rank = 0, passed = 0, failed = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (int tp : {1, 2, 4}) {
    if (world % tp) continue;
    MpiCommunicator mpi(MPI_COMM_WORLD, tp, world / tp);
    const int tp_rank = mpi.rank(Group::TP);
    ParamLayout layout;
    layout.add("replicated", 5, 7, Shard::Replicated, tp);
    layout.add("rows_padded", 13, 6, Shard::Rows, tp);  // 13 rows: padding at tp 2 and 4
    layout.add("cols", 9, 8, Shard::Cols, tp);
    layout.add_blocks("qkv", {8, 8, 8}, 5, tp, DType::F32, TensorRole::Weight);
    layout.add_blocks("gqa_qkv", {16, 4, 4}, 3, tp, DType::F32, TensorRole::Weight);  // grouped-query: unequal blocks
    for (const TensorSpec& spec : layout.tensors) {
      std::vector<float> full(static_cast<size_t>(spec.rows) * spec.cols), local(spec.local_size());
      for (size_t i = 0; i < full.size(); ++i) full[i] = 1.0f + static_cast<float>(i);
      slice_of_full_tensor(spec, full.data(), tp_rank, local.data());
      for (size_t limit : {size_t(1), size_t(7), size_t(30), size_t(-1)}) {
        CountingComm comm(mpi);
        std::vector<float> got(full.size(), 0.0f);
        std::vector<int> covered(full.size(), 0);
        bool in_range = true;
        for_each_full_block<float>(comm, spec, local.data(), limit, [&](const TensorBlock<float>& b) {
          in_range = in_range && b.row0 >= 0 && b.rows > 0 && b.row0 + b.rows <= spec.rows && b.col0 >= 0 &&
                     b.col0 + b.cols <= spec.cols;
          if (!in_range) return;
          for (int r = 0; r < b.rows; ++r)
            for (int c = 0; c < b.cols; ++c) {
              const size_t fi = static_cast<size_t>(b.row0 + r) * spec.cols + b.col0 + c;
              got[fi] = b.data[static_cast<size_t>(r) * b.cols + c];
              ++covered[fi];
            }
        });
        const bool once = std::all_of(covered.begin(), covered.end(), [](int n) { return n == 1; });
        const size_t floor = static_cast<size_t>(spec.local_cols) * tp;  // one local row of each rank
        const bool bounded = spec.shard == Shard::Replicated ? comm.largest == 0
                                                              : comm.largest <= std::max(std::min(limit, spec.local_size() * tp), floor);
        const bool ok = in_range && once && got == full && bounded;
        (ok ? passed : failed)++;
        if (rank == 0 || !ok)
          std::printf("[rank %d] tp %d %-12s limit %-20zu: %s (in range %d, each element once %d, values %d, largest gather %zu)\n",
                      rank, tp, spec.name.c_str(), limit, ok ? "ok" : "WRONG", in_range, once, got == full, comm.largest);
      }
    }
  }
  int totals[2] = {passed, failed};
  MPI_Allreduce(MPI_IN_PLACE, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf("gather_blocks: %d passed, %d failed\n", totals[0], totals[1]);
  MPI_Finalize();
  return totals[1] == 0 ? 0 : 1;
}
