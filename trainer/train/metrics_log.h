// What a run reports: one progress line per log interval on stdout and one JSON object per
// line in the metrics file (per step and per eval). Only rank 0 writes either.
#pragma once
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace lora {

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens `path` (creating its folder) for appending, so a resumed run continues the file.
  void open(const std::string& path);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
  std::string path_;
};

// "step 40/300 | loss 2.4312 | lr 2.95e-03 | 5210 tok/s | elapsed 0:08 | eta 0:52"
std::string progress_line(int step, int total, double loss, double lr, double tokens_per_s, double elapsed_s);

// 75 -> "1:15", 3725 -> "1:02:05".
std::string format_duration(double seconds);

}  // namespace lora
