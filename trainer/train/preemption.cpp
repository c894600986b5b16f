#include "trainer/train/preemption.h"

#include <pthread.h>

#include <csignal>
#include <cstring>
#include <initializer_list>
#include <thread>

namespace lora {

namespace {

volatile std::sig_atomic_t g_signal = 0;

void on_preemption_signal(int signo) { g_signal = signo; }

sigset_t preemption_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : {SIGTERM, SIGUSR1}) sigaddset(&set, signo);
  return set;
}

}  // namespace

void install_preemption_handlers() {
  // oneDNN 2.x's JIT GEMM kernels (gemm:jit, what Debian's libdnnl2 runs for fp32 matmul on
  // AVX2 and AVX-512) point rsp into the heap while they run; a signal handled on that thread
  // pushes its frame there and corrupts the heap (oneDNN issue #4845, fixed upstream in
  // 2026 by PR #4855). So no thread that computes may take these signals: they are blocked
  // here, before MPI, OpenMP or the watchdog start threads, which inherit the mask, and one
  // thread that runs nothing else receives them with sigwait.
  const sigset_t set = preemption_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    for (int signo = 0;;)
      if (sigwait(&set, &signo) == 0) g_signal = signo;
  }).detach();
  // A thread started before this call (a BLAS pool started when its library loaded) still
  // takes them; there the handler only records the signal, and SA_RESTART keeps a write in
  // progress from failing with EINTR.
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_preemption_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int signo : {SIGTERM, SIGUSR1}) sigaction(signo, &sa, nullptr);
}

int preemption_signal() { return g_signal; }

const char* signal_name(int signo) {
  switch (signo) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace lora
