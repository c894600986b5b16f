#include "trainer/machine/mpi_launch.h"

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

namespace lora {

namespace {

// `name = value` in an Open MPI parameter file, or nothing.
std::optional<std::string> value_in_file(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find('#'));
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::istringstream key(line.substr(0, eq)), value(line.substr(eq + 1));
    std::string k, v;
    if (key >> k && k == name && value >> v) return v;
  }
  return std::nullopt;
}

// An MCA parameter as Open MPI resolves it: the environment (mpirun's --mca sets it for its
// processes too), then the user's file, then the system's.
std::optional<std::string> mca_value(const std::string& name, const std::string& home_params,
                                     const std::string& system_params) {
  if (const char* v = std::getenv(("OMPI_MCA_" + name).c_str())) return std::string(v);
  if (auto v = value_in_file(home_params, name)) return v;
  return value_in_file(system_params, name);
}

// The number of hosts of a job started by Open MPI's mpirun (ORTE tells its processes where
// mpirun is and how many hosts the job has; srun and a singleton do not), else 0.
int mpirun_hosts() {
  const char* hnp = std::getenv("OMPI_MCA_orte_hnp_uri");
  const char* nodes = std::getenv("OMPI_MCA_orte_num_nodes");
  return hnp && nodes ? std::atoi(nodes) : 0;
}

}  // namespace

std::string lost_link_note(const std::string& home_params, const std::string& system_params) {
  const int hosts = mpirun_hosts();
  if (hosts < 2) return "";
  std::string missing, flags;
  for (const auto& [name, value] : kLostLinkMca) {
    flags += std::string(flags.empty() ? "" : " ") + "--mca " + name + " " + value;
    if (!mca_value(name, home_params, system_params))
      missing += std::string(missing.empty() ? "" : ", ") + name;
  }
  if (missing.empty()) return "";
  return "lora_dist: note: this job runs on " + std::to_string(hosts) + " hosts under mpirun without " + missing +
         ": after a lost link the watchdog ends every rank within parallel.timeout_s, but mpirun and the "
         "cut-off host's daemon then wait for TCP keepalive (up to ~15 minutes with the defaults). Start it "
         "with " + flags + " (launch/mpirun.sh and the Slurm scripts do); docs/failures-and-exit-codes.md";
}

double lost_link_detection_s(const std::string& home_params, const std::string& system_params) {
  if (mpirun_hosts() < 2) return 0;
  double v[3];
  for (int i = 0; i < 3; ++i) {
    const auto text = mca_value(kLostLinkMca[i][0], home_params, system_params);
    char* end = nullptr;
    v[i] = text ? std::strtod(text->c_str(), &end) : 0;
    if (!text || end == text->c_str() || v[i] <= 0) return 0;  // the defaults: minutes, no hold helps
  }
  return v[0] + v[1] * v[2];
}

namespace {
std::string home_params() {
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.openmpi/mca-params.conf";
}
constexpr const char* kSystemParams = "/etc/openmpi/openmpi-mca-params.conf";
}  // namespace

std::string lost_link_note() { return lost_link_note(home_params(), kSystemParams); }
double lost_link_detection_s() { return lost_link_detection_s(home_params(), kSystemParams); }

}  // namespace lora
