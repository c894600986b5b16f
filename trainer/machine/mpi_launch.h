// How the job was launched, where it matters to the user: Open MPI's runtime (mpirun and each
// host's orted) notices a lost link only through TCP keepalive, and with its defaults (300 s
// idle, then 9 probes 20 s apart) a job whose ranks the watchdog has ended stays up for up to
// ~15 minutes. launch/mpirun.sh and the Slurm scripts set three MCA parameters that end it in
// about 20 s; a plain `mpirun` across hosts needs them too.
#pragma once
#include <string>

namespace lora {

// The three parameters and the values the launch scripts use.
inline constexpr const char* kLostLinkMca[3][2] = {
    {"oob_tcp_keepalive_time", "10"}, {"oob_tcp_keepalive_intvl", "2"}, {"oob_tcp_keepalive_probes", "3"}};

// A note for rank 0 when this process was started by Open MPI's mpirun on more than one host
// and at least one of the three parameters is set neither in the environment (OMPI_MCA_*,
// which mpirun's --mca also sets for its processes) nor in Open MPI's parameter files
// ($HOME/.openmpi/mca-params.conf, /etc/openmpi/openmpi-mca-params.conf); empty otherwise
// (one host, srun, a singleton). `home_params` and `system_params` name those files (tests).
std::string lost_link_note(const std::string& home_params, const std::string& system_params);
std::string lost_link_note();

// Seconds after a link is lost until Open MPI's runtime notices it (keepalive time + interval
// x probes, 16 with the values above) for a job on several hosts under mpirun with all three
// parameters set; 0 otherwise. The watchdog's limit stays above it (comm/watchdog.h).
double lost_link_detection_s(const std::string& home_params, const std::string& system_params);
double lost_link_detection_s();

}  // namespace lora
