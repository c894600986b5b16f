// The NCCL communicator (issue 14, point 2). NCCL refuses two ranks on one GPU, so here every
// group has one rank: the calls still run through NCCL (ncclCommInitRank, ncclAllReduce,
// ncclBroadcast, ncclAllGather on the compute stream). Without a GPU the constructor must fail
// with the CUDA call named; the multi-GPU cases (bytes equal to the LoRA gradient's, the
// dead-peer watchdog) need a machine with two GPUs or more.
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#ifdef LORA_HAVE_CUDA
#include "comm/nccl_communicator.h"
#include "model/ops/cuda/device.h"
#include "model/ops/cuda/device_buffer.h"
#endif

namespace lora {
namespace {

#ifndef LORA_HAVE_CUDA

TEST(NcclCommunicator, SkippedWithoutCudaBuild) {
  GTEST_SKIP() << "this build has no CUDA backend (LORA_WITH_CUDA=OFF or no nvcc): NCCL tests not built";
}

#else

TEST(NcclCommunicator, WithoutADeviceTheErrorNamesTheCall) {
  std::string why;
  if (cuda::device_count(&why) > 0) GTEST_SKIP() << "a CUDA device is visible: this is the no-GPU case";
  try {
    NcclCommunicator comm(MPI_COMM_WORLD, 1, 1);
    FAIL() << "an NCCL communicator was built without a CUDA device";
  } catch (const cuda::CudaError& e) {
    EXPECT_NE(std::string(e.what()).find("cudaGetDevice"), std::string::npos) << e.what();
  }
}

TEST(NcclCommunicator, OneRankGroupsRunEveryCollectiveThroughNccl) {
  std::string why;
  if (cuda::device_count(&why) == 0)
    GTEST_SKIP() << "no CUDA device visible (" << why << "): NCCL collectives not run";
  cuda::select_device(0);
  NcclCommunicator comm(MPI_COMM_WORLD, 1, 1);
  for (Group g : {Group::World, Group::TP, Group::DP}) {
    EXPECT_EQ(comm.rank(g), 0);
    EXPECT_EQ(comm.size(g), 1);
  }
  const std::vector<float> x = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f};
  cuda::DeviceBuffer<float> buf(x), gathered(x.size());
  comm.all_reduce_sum(buf.data(), x.size(), Group::DP);
  comm.all_reduce_max(buf.data(), x.size(), Group::TP);
  comm.broadcast(buf.data(), x.size() * sizeof(float), 0, Group::World);
  comm.all_gather(buf.data(), x.size(), gathered.data(), Group::TP);
  comm.barrier(Group::World);
  EXPECT_EQ(buf.download(), x);  // one rank: the sum, the max and the broadcast are the identity
  EXPECT_EQ(gathered.download(), x);
  const std::vector<double> y = {0.1, 0.2};
  cuda::DeviceBuffer<double> dbuf(y);
  comm.all_reduce_sum(dbuf.data(), y.size(), Group::World);
  EXPECT_EQ(dbuf.download(), y);
  for (Group g : {Group::World, Group::TP, Group::DP}) EXPECT_EQ(comm.bytes(g), 0u) << "a group of one moves nothing";
}

#endif  // LORA_HAVE_CUDA

}  // namespace
}  // namespace lora
