#include "io/h5_probe.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "io/hdf5_util.h"
#include "io/input_error.h"

namespace lora {

namespace {

// Everything the real read of one dataset makes libhdf5 parse. Return values are ignored:
// only surviving matters here.
void probe_dataset(hid_t file, const std::string& name) {
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) return;
  const hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (ds < 0) return;
  const hid_t type = H5Dget_type(ds);
  if (type >= 0) {
    H5Tget_class(type);
    H5Tget_size(type);
    H5Tclose(type);
  }
  const hid_t dcpl = H5Dget_create_plist(ds);
  if (dcpl >= 0) {
    H5Pget_layout(dcpl);
    H5Pget_nfilters(dcpl);
    H5Pclose(dcpl);
  }
  H5Dget_storage_size(ds);
  const hid_t space = H5Dget_space(ds);
  const int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  const hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
#if H5_VERSION_GE(1, 10, 5)
  // The chunk index (a B-tree or other structure) is metadata too, and the full read walks
  // it; the first and last element below reach only two of its leaves.
  hsize_t nchunks = 0;
  if (space >= 0 && H5Dget_num_chunks(ds, space, &nchunks) >= 0 && points > 0 && nchunks <= hsize_t(points))
    for (hsize_t i = 0; i < nchunks; ++i) {
      hsize_t offset[H5S_MAX_RANK];
      unsigned mask = 0;
      haddr_t addr = 0;
      hsize_t size = 0;
      if (H5Dget_chunk_info(ds, space, i, offset, &mask, &addr, &size) < 0) break;
    }
#endif
  if (rank >= 1 && rank <= H5S_MAX_RANK && points > 0) {
    hsize_t dims[H5S_MAX_RANK], last[H5S_MAX_RANK], first[H5S_MAX_RANK] = {};
    H5Sget_simple_extent_dims(space, dims, nullptr);
    for (int d = 0; d < rank; ++d) last[d] = dims[d] - 1;
    const hsize_t one = 1;
    const hid_t mem = H5Screate_simple(1, &one, nullptr);
    for (const hsize_t* at : {first, last}) {
      double value = 0;
      if (H5Sselect_elements(space, H5S_SELECT_SET, 1, at) >= 0)
        H5Dread(ds, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, &value);
    }
    H5Sclose(mem);
  }
  if (space >= 0) H5Sclose(space);
  H5Dclose(ds);
}

[[noreturn]] void run_child(const std::string& path, const std::vector<std::string>& datasets) {
  // A crash here is expected: let it end the child at once, with no core of the whole rank
  // and without the parent's handlers (Open MPI prints a backtrace and talks to its daemon).
  const struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, SIG_DFL);
  // The parent's preemption signals are blocked and recorded (trainer/train/preemption.h); in
  // the child a scheduler's SIGTERM to the whole job should simply end it.
  for (int sig : {SIGTERM, SIGUSR1}) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  h5_quiet();
  const H5Handle fapl = h5_fapl_unlocked();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (file >= 0) {
    for (const std::string& name : datasets) probe_dataset(file, name);
    H5Fclose(file);
  }
  _exit(0);  // no atexit handlers, no stdio flush, no MPI: the parent owns all of those
}

double now_s() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

}  // namespace

void probe_hdf5_file(const std::string& path, const std::vector<std::string>& datasets, double timeout_s) {
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(path + ": cannot fork to probe the HDF5 file: " + std::strerror(errno));
  if (pid == 0) run_child(path, datasets);

  const double deadline = now_s() + timeout_s;
  int status = 0;
  for (useconds_t pause = 100;; pause = std::min<useconds_t>(pause * 2, 20000)) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return;  // SIGCHLD ignored elsewhere: nothing to learn, the real read decides
    if (now_s() > deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      throw InputError(path + ": libhdf5 did not finish parsing this file's metadata within " +
                       std::to_string(int(timeout_s)) + " s (corrupted HDF5?)");
    }
    usleep(pause);
  }
  if (WIFSIGNALED(status))
    throw InputError(path + ": libhdf5 crashed while parsing this file's metadata (corrupted HDF5?): signal " +
                     std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ") in the probe process");
}

}  // namespace lora
