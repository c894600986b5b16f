// OpenBLAS picks its GEMM kernels from the CPU model at load time. Debian's 0.3.21 does
// not know newer CPUs (e.g. Xeon family 6 model 207) and falls back to its generic
// "Prescott" SSE3 kernels, 3-4x slower than its AVX-512 ones on the same core.
#pragma once

namespace lora {

// When OpenBLAS chose the generic kernels on a CPU with AVX-512 and the user did not set
// OPENBLAS_CORETYPE, re-executes this program with OPENBLAS_CORETYPE=SkylakeX (the
// variable is read only when the library loads, so setting it now would be too late).
// Must run before MPI_Init; exec keeps the PID, so mpirun/srun see the same process.
void ensure_vector_blas_kernels(char** argv);

}  // namespace lora
