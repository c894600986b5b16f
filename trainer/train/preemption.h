// Preemption: SIGTERM (what Slurm, Kubernetes and most schedulers send before killing a
// job) and SIGUSR1 (what `sbatch --signal=B:USR1@<seconds>` can be told to send) ask the
// trainer to finish the current step, write a checkpoint and exit with kExitPreempted.
//
// The handler only records the signal, so it is async-signal-safe and idempotent: a
// second signal (mpirun forwarding one the rank already got, or a scheduler repeating
// itself) changes nothing. Ranks may see the signal at different steps or not at all;
// Trainer::run agrees on it with one all-reduce per step.
#pragma once

namespace lora {

// EX_TEMPFAIL of <sysexits.h>: "checkpoint written, requeue me".
constexpr int kExitPreempted = 75;

// Routes SIGTERM and SIGUSR1 to a thread of their own (see the .cpp for why no computing
// thread may take them). Call it first in main, before MPI_Init and anything else that
// starts threads: they inherit the blocked mask. A child process started later inherits
// it too and should clear it.
void install_preemption_handlers();

// The signal number that asked for preemption, 0 when none has arrived.
int preemption_signal();

// "SIGTERM", "SIGUSR1", or "a signal" for any other number.
const char* signal_name(int signo);

}  // namespace lora
