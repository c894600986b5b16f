// The note for a multi-host mpirun job without Open MPI's lost-link keepalive settings
// (trainer/machine/mpi_launch.h): from the environment mpirun gives its processes and the
// parameter files.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "trainer/machine/mpi_launch.h"

namespace lora {
namespace {

namespace fs = std::filesystem;

class LostLinkNote : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(LORA_BINARY_DIR) / "test_mpi_launch";
    fs::create_directories(dir_);
    home_ = (dir_ / "home.conf").string();
    system_ = (dir_ / "system.conf").string();
    fs::remove(home_);
    fs::remove(system_);
    for (const auto& [name, value] : kLostLinkMca) unsetenv(("OMPI_MCA_" + std::string(name)).c_str());
    setenv("OMPI_MCA_orte_hnp_uri", "1.0;tcp://10.0.0.1:5000", 1);
    setenv("OMPI_MCA_orte_num_nodes", "2", 1);
  }
  void TearDown() override {
    unsetenv("OMPI_MCA_orte_hnp_uri");
    unsetenv("OMPI_MCA_orte_num_nodes");
    for (const auto& [name, value] : kLostLinkMca) unsetenv(("OMPI_MCA_" + std::string(name)).c_str());
  }
  std::string note() const { return lost_link_note(home_, system_); }
  fs::path dir_;
  std::string home_, system_;
};

TEST_F(LostLinkNote, MultiHostMpirunWithoutTheSettingsNamesThem) {
  const std::string n = note();
  EXPECT_NE(n.find("runs on 2 hosts under mpirun without oob_tcp_keepalive_time, oob_tcp_keepalive_intvl, "
                   "oob_tcp_keepalive_probes"), std::string::npos) << n;
  EXPECT_NE(n.find("--mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3"),
            std::string::npos) << n;
}

TEST_F(LostLinkNote, SettingsFromTheEnvironmentOrTheParameterFilesCount) {
  setenv("OMPI_MCA_oob_tcp_keepalive_time", "10", 1);
  std::ofstream(home_) << "# mine\noob_tcp_keepalive_intvl = 2\n";
  EXPECT_NE(note().find("without oob_tcp_keepalive_probes:"), std::string::npos) << note();
  std::ofstream(system_) << "oob_tcp_keepalive_probes=3  # all hosts\n";
  EXPECT_EQ(note(), "");
}

TEST_F(LostLinkNote, DetectionTimeIsKeepaliveTimePlusIntervalTimesProbes) {
  EXPECT_EQ(lost_link_detection_s(home_, system_), 0);  // the defaults: no hold
  for (const auto& [name, value] : kLostLinkMca) setenv(("OMPI_MCA_" + std::string(name)).c_str(), value, 1);
  EXPECT_EQ(lost_link_detection_s(home_, system_), 16);
  unsetenv("OMPI_MCA_oob_tcp_keepalive_probes");
  std::ofstream(system_) << "oob_tcp_keepalive_probes = 5\n";
  std::ofstream(home_) << "oob_tcp_keepalive_intvl = 3\n";  // the environment's 2 wins over the user's file
  EXPECT_EQ(lost_link_detection_s(home_, system_), 20);
  setenv("OMPI_MCA_orte_num_nodes", "1", 1);
  EXPECT_EQ(lost_link_detection_s(home_, system_), 0);
}

TEST_F(LostLinkNote, OneHostSrunOrSingletonGetNoNote) {
  setenv("OMPI_MCA_orte_num_nodes", "1", 1);
  EXPECT_EQ(note(), "");
  setenv("OMPI_MCA_orte_num_nodes", "4", 1);
  unsetenv("OMPI_MCA_orte_hnp_uri");  // srun --mpi=pmix, or a singleton
  EXPECT_EQ(note(), "");
}

}  // namespace
}  // namespace lora
