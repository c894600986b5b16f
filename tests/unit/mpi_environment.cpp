// MPI for the unit tests: initialised once per test process (a singleton, no mpirun
// needed), so tests can build a real MpiCommunicator over MPI_COMM_SELF.
#include <gtest/gtest.h>
#include <mpi.h>

namespace {

class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) MPI_Init(nullptr, nullptr);
  }
  void TearDown() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

const auto* const kMpi = ::testing::AddGlobalTestEnvironment(new MpiEnvironment);

}  // namespace
