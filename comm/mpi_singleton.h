// MPI for one process's work outside mpirun (export --merged, analyze: a one-rank model on
// MPI_COMM_SELF): initialised here unless the caller already did, and finalised on leaving
// the scope only if it was initialised here.
#pragma once
#include <mpi.h>

namespace lora {

class MpiSingleton {
 public:
  MpiSingleton() {
    int inited = 0;
    MPI_Initialized(&inited);
    own_ = !inited;
    if (own_) MPI_Init(nullptr, nullptr);
  }
  ~MpiSingleton() {
    if (own_) MPI_Finalize();
  }
  MpiSingleton(const MpiSingleton&) = delete;
  MpiSingleton& operator=(const MpiSingleton&) = delete;

 private:
  bool own_ = false;
};

}  // namespace lora
