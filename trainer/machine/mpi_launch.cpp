#include "trainer/machine/mpi_launch.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace lora {

namespace {

// `name = value` lines of an Open MPI parameter file: is `name` set there?
bool set_in_file(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find('#'));
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::istringstream key(line.substr(0, eq));
    std::string k;
    if (key >> k && k == name) return true;
  }
  return false;
}

}  // namespace

std::string lost_link_note(const std::string& home_params, const std::string& system_params) {
  // mpirun (ORTE) tells its processes where it is and how many hosts the job has; srun and a
  // singleton do not.
  const char* hnp = std::getenv("OMPI_MCA_orte_hnp_uri");
  const char* nodes = std::getenv("OMPI_MCA_orte_num_nodes");
  if (hnp == nullptr || nodes == nullptr || std::atoi(nodes) < 2) return "";
  std::string missing, flags;
  for (const auto& [name, value] : kLostLinkMca) {
    flags += std::string(flags.empty() ? "" : " ") + "--mca " + name + " " + value;
    if (std::getenv(("OMPI_MCA_" + std::string(name)).c_str()) || set_in_file(home_params, name) ||
        set_in_file(system_params, name))
      continue;
    missing += std::string(missing.empty() ? "" : ", ") + name;
  }
  if (missing.empty()) return "";
  return "lora_dist: note: this job runs on " + std::string(nodes) + " hosts under mpirun without " + missing +
         ": after a lost link the watchdog ends every rank within parallel.timeout_s, but mpirun and the "
         "cut-off host's daemon then wait for TCP keepalive (up to ~15 minutes with the defaults). Start it "
         "with " + flags + " (launch/mpirun.sh and the Slurm scripts do); docs/failures-and-exit-codes.md";
}

std::string lost_link_note() {
  const char* home = std::getenv("HOME");
  return lost_link_note(std::string(home ? home : "") + "/.openmpi/mca-params.conf",
                        "/etc/openmpi/openmpi-mca-params.conf");
}

}  // namespace lora
