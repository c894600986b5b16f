#include "io/h5_probe.h"

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "io/hdf5_util.h"
#include "io/input_error.h"

extern char** environ;

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

// The probe runs in a fresh process: this program re-executed (/proc/self/exe) with the file
// and the dataset names in its environment. A fork() alone would not do: the child of a
// multi-threaded process (OpenMP workers, Open MPI's progress threads, the watchdog) inherits
// every lock another thread held at that instant and never sees it released. libhdf5 built
// thread-safe (Debian's is) takes one global mutex in every call, and GCC 12's AddressSanitizer
// allocator has no fork handlers, so a forked probe could wait forever (the tests
// H5Probe.FinishesWhileAnotherThreadIsInsideHdf5 and failure.nan_base_under_load). After exec
// only the environment and the open files are inherited. The dataset names travel in the
// environment: tens of KiB for the largest models, well inside Linux's 128 KiB per string.
constexpr const char* kProbeFileVar = "LORA_DIST_H5_PROBE_FILE";
constexpr const char* kProbeDatasetsVar = "LORA_DIST_H5_PROBE_DATASETS";  // names, one per line

[[noreturn]] void run_child(const std::string& path, const std::vector<std::string>& datasets) {
  // A crash here is expected: let it end the child at once, with no core and without any
  // handler a library installed (Open MPI prints backtraces; ASan reports and exits 1).
  const struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, SIG_DFL);
  h5_quiet();
  const H5Handle fapl = h5_fapl_unlocked();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (file >= 0) {
    for (const std::string& name : datasets) probe_dataset(file, name);
    H5Fclose(file);
  }
  _exit(0);  // no atexit handlers, no stdio flush: the program's main never runs in the probe
}

// In the re-executed program, before main (and so before MPI_Init and any thread): probe, _exit.
// Any program that links the reader carries this initializer with it, the test binaries too.
const bool kRanAsProbe = [] {
  const char* path = std::getenv(kProbeFileVar);
  if (path == nullptr) return false;
  std::vector<std::string> datasets;
  const char* names = std::getenv(kProbeDatasetsVar);
  for (const char* at = names ? names : ""; *at;) {
    const char* end = std::strchr(at, '\n');
    datasets.emplace_back(at, end ? end : at + std::strlen(at));
    at = end ? end + 1 : at + std::strlen(at);
  }
  run_child(path, datasets);
}();

// Starts the probe process; returns its pid.
pid_t spawn_probe(const std::string& path, const std::vector<std::string>& datasets) {
  std::string names;
  for (const std::string& n : datasets) names += n + "\n";
  std::vector<std::string> env = {std::string(kProbeFileVar) + "=" + path, std::string(kProbeDatasetsVar) + "=" + names};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "LORA_DIST_H5_PROBE_", 19) != 0) env.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char argv0[] = "lora_dist-hdf5-probe";
  char* argv[] = {argv0, nullptr};
  // The parent blocks and records its preemption signals (trainer/train/preemption.h); in the
  // probe a scheduler's SIGTERM to the whole job should simply end it.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGUSR1, SIGINT}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, "/proc/self/exe", nullptr, &attr, argv, envp.data());
  posix_spawnattr_destroy(&attr);
  if (err != 0)
    throw std::runtime_error(path + ": cannot start the process that probes the HDF5 file: " + std::strerror(err));
  return pid;
}

double now_s() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

}  // namespace

void probe_hdf5_file(const std::string& path, const std::vector<std::string>& datasets, double timeout_s) {
  const pid_t pid = spawn_probe(path, datasets);

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
