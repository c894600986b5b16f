#include "comm/watchdog.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace lora {

namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Open MPI's per-host daemon: when the link to mpirun is gone it would wait for it forever.
bool parent_is_orted() {
  std::ifstream comm("/proc/" + std::to_string(getppid()) + "/comm");
  std::string name;
  return (comm >> name) && name == "orted";
}

}  // namespace

Watchdog::Watchdog(double timeout_s, int world_rank, AbortFn abort, double grace_s)
    : timeout_s_(timeout_s), grace_s_(grace_s), world_rank_(world_rank), abort_(std::move(abort)) {
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::step_started(int step) {
  std::lock_guard<std::mutex> lock(mu_);
  step_ = step;
  in_step_ = true;
  step_since_ = Clock::now();
}

void Watchdog::step_finished(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  in_step_ = false;
  ++steps_measured_;
  slowest_step_ = std::max(slowest_step_, seconds);
}

void Watchdog::set_minimum_limit(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  minimum_limit_s_ = seconds;
}

double Watchdog::collective_limit_locked() const {
  if (!long_phase_.empty() || steps_measured_ < kStepsBeforeAdapting) return std::max(timeout_s_, minimum_limit_s_);
  return std::max(minimum_limit_s_, std::min(timeout_s_, std::max(kFloorSeconds, kStepMultiple * slowest_step_)));
}

double Watchdog::collective_limit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return collective_limit_locked();
}

Watchdog::Collective::Collective(Watchdog* w, const char* op, size_t bytes, const std::string& group) : w_(w) {
  if (!w_) return;
  std::lock_guard<std::mutex> lock(w_->mu_);
  w_->in_collective_ = true;
  w_->collective_op_ = op;
  w_->collective_bytes_ = bytes;
  w_->collective_group_ = &group;
  w_->collective_since_ = Clock::now();
}

Watchdog::Collective::~Collective() {
  if (!w_) return;
  std::lock_guard<std::mutex> lock(w_->mu_);
  w_->in_collective_ = false;
}

Watchdog::LongPhase::LongPhase(Watchdog* w, std::string what) : w_(w) {
  if (!w_) return;
  std::lock_guard<std::mutex> lock(w_->mu_);
  saved_ = w_->long_phase_;
  w_->long_phase_ = std::move(what);
}

Watchdog::LongPhase::~LongPhase() {
  if (!w_) return;
  std::lock_guard<std::mutex> lock(w_->mu_);
  w_->long_phase_ = saved_;
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (stop_) break;
    const auto now = Clock::now();
    char why[160];
    if (in_collective_) {
      const double waited = seconds_between(collective_since_, now), limit = collective_limit_locked();
      if (waited > limit) {
        std::snprintf(why, sizeof why, "made no progress for %.0f s (limit %.0f s%s)", waited, limit,
                      long_phase_.empty() ? "" : ", during a long phase");
        const std::string msg = std::string(collective_op_) + " of " + std::to_string(collective_bytes_) +
                                " bytes over " + *collective_group_ + " at step " + std::to_string(step_ + 1) +
                                (long_phase_.empty() ? "" : " (" + long_phase_ + ")") + " " + why;
        lock.unlock();
        fire(msg);
      }
    }
    if (in_step_) {
      const double waited = seconds_between(step_since_, now);
      // A backstop for a rank stuck outside any collective: twice the collective limit's
      // ceiling, so that the ranks waiting on it (whose messages name the collective) speak first.
      const double limit = 2 * std::max({timeout_s_, kStepMultiple * slowest_step_, minimum_limit_s_});
      if (waited > limit && long_phase_.empty()) {
        std::snprintf(why, sizeof why, "has run for %.0f s (limit %.0f s)", waited, limit);
        const std::string msg = "step " + std::to_string(step_ + 1) + " " + why;
        lock.unlock();
        fire(msg);
      }
    }
  }
}

void Watchdog::fire(const std::string& why) {
  std::fprintf(stderr,
               "lora_dist: rank %d: watchdog: %s; a peer is dead or unreachable (lost link or host?). "
               "Aborting the job (exit %d); resume from the last checkpoint. parallel.timeout_s sets the limit.\n",
               world_rank_, why.c_str(), kExitWatchdog);
  std::fflush(stderr);
  // The abort may block forever when the peers are unreachable: a second thread ends this
  // process after the grace period whatever happens, and takes down a local Open MPI daemon
  // that would otherwise be left waiting for its lost mpirun.
  const double grace = grace_s_;
  std::thread([grace] {
    std::this_thread::sleep_for(std::chrono::duration<double>(grace));
    std::fprintf(stderr, "lora_dist: watchdog: the abort did not complete in %.0f s; exiting\n", grace);
    std::fflush(stderr);
    if (parent_is_orted()) kill(getppid(), SIGKILL);
    _exit(kExitWatchdog);
  }).detach();
  if (abort_) abort_(kExitWatchdog);
  // abort_ returned without ending the process: wait for the grace thread.
  for (;;) pause();
}

}  // namespace lora
