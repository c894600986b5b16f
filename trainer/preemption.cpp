#include "trainer/preemption.h"

#include <csignal>
#include <cstring>
#include <initializer_list>

namespace lora {

namespace {

volatile std::sig_atomic_t g_signal = 0;

void on_preemption_signal(int signo) { g_signal = signo; }

}  // namespace

void install_preemption_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_preemption_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a signal in the middle of a write must not make it fail with EINTR
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
