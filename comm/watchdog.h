// A per-rank watchdog over collectives and steps (PyTorch's NCCL watchdog, Megatron's
// heartbeat). A lost link or a dead host leaves every rank of a job blocked in a collective
// forever: MPI over TCP notices nothing, the job burns its allocation and Slurm never requeues
// it. Here every collective is timed by a thread of its own; when one makes no progress for
// the limit, the rank says which collective, group, step and peers it was waiting for, tries
// to abort the whole job, and exits by itself `grace` seconds later if the abort cannot
// complete (its peers may be unreachable), so no rank outlives the failure by much.
//
// The limit: parallel.timeout_s until a few steps have been measured (a first step, a resume
// or a checkpoint may be slow), then `kStepMultiple` times the slowest step seen, bounded
// below by kFloorSeconds and above by parallel.timeout_s. While a long phase runs (rank 0
// writing a checkpoint while the others wait in a barrier) the limit is parallel.timeout_s.
// Never below set_minimum_limit's (the MPI runtime's keepalive window across hosts).
// A whole step is timed too, against 2 x max(parallel.timeout_s, kStepMultiple x slowest step).
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace lora {

// Exit status of a rank whose watchdog fired (README "Errors and exit codes").
constexpr int kExitWatchdog = 5;

class Watchdog {
 public:
  // abort(code) tries to end the whole job (MPI_Abort; ncclCommAbort for NCCL) and may never
  // return; `grace` seconds after calling it the watchdog _exit()s the process itself.
  using AbortFn = std::function<void(int code)>;
  static constexpr double kStepMultiple = 20;
  static constexpr double kFloorSeconds = 30;
  static constexpr int kStepsBeforeAdapting = 3;

  Watchdog(double timeout_s, int world_rank, AbortFn abort, double grace_s = 10);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // No collective limit below `seconds` (0, the default: none). Across hosts, Open MPI's
  // runtime notices a lost link through TCP keepalive, but only on idle connections: anything
  // a rank sends before that, its watchdog message (forwarded by its host's daemon) or its
  // abort, puts data in flight to the lost host, and mpirun or that daemon then waits for the
  // kernel's retransmission limit (tcp_retries2: ~15 minutes by default) instead of ending the
  // job when keepalive gives up. With the limit above the keepalive window the runtime ends
  // the job first, and a stalled peer on a live link is still caught.
  void set_minimum_limit(double seconds);

  // The trainer's progress, for the limit and the messages.
  void step_started(int step);
  void step_finished(double seconds);

  // While alive, the rank is inside collective `op` of `bytes` over `group` ("the dp group
  // (world ranks 1, 3)"). Nothing is formatted unless the watchdog fires: this runs for every
  // collective of every step. `op` and `group` must outlive the object.
  class Collective {
   public:
    Collective(Watchdog* w, const char* op, size_t bytes, const std::string& group);
    ~Collective();
    Collective(const Collective&) = delete;
    Collective& operator=(const Collective&) = delete;

   private:
    Watchdog* w_;
  };

  // While alive, collectives may take up to parallel.timeout_s (checkpoint writes, resume).
  class LongPhase {
   public:
    LongPhase(Watchdog* w, std::string what);
    ~LongPhase();
    LongPhase(const LongPhase&) = delete;
    LongPhase& operator=(const LongPhase&) = delete;

   private:
    Watchdog* w_;
    std::string saved_;
  };

  // Seconds a collective may now wait.
  double collective_limit() const;

 private:
  using Clock = std::chrono::steady_clock;
  void run();
  double collective_limit_locked() const;
  [[noreturn]] void fire(const std::string& why);

  const double timeout_s_, grace_s_;
  double minimum_limit_s_ = 0;  // guarded by mu_
  const int world_rank_;
  AbortFn abort_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int step_ = 0;
  int steps_measured_ = 0;
  double slowest_step_ = 0;
  std::string long_phase_;  // non-empty while a LongPhase is alive
  bool in_collective_ = false;
  const char* collective_op_ = "";
  size_t collective_bytes_ = 0;
  const std::string* collective_group_ = nullptr;
  Clock::time_point collective_since_;
  bool in_step_ = false;
  Clock::time_point step_since_;
  std::thread thread_;
};

}  // namespace lora
