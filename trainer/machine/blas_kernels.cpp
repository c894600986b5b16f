#include "trainer/machine/blas_kernels.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" char* openblas_get_corename(void);

namespace lora {

void ensure_vector_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || !__builtin_cpu_supports("avx512f")) return;
  const char* core = openblas_get_corename();
  if (!core || std::strcmp(core, "Prescott") != 0) return;
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  execv("/proc/self/exe", argv);
  std::perror("lora_dist: re-exec with OPENBLAS_CORETYPE=SkylakeX failed; continuing with generic BLAS kernels");
}

}  // namespace lora
