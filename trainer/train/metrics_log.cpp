#include "trainer/train/metrics_log.h"

#include "trainer/config/config_loader.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace lora {

void MetricsLog::open(const std::string& path) {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (ec)
    throw ConfigError(path + ": output.dir: cannot create the folder " + p.parent_path().string() + ": " +
                      ec.message());
  errno = 0;
  out_.open(path, std::ios::app);
  if (!out_)
    throw ConfigError(path + ": output.dir / output.metrics: cannot open the metrics file for appending: " +
                      std::strerror(errno ? errno : EIO));
  path_ = path;
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!out_.is_open()) return;
  out_ << record.dump() << '\n';
  out_.flush();  // a killed run keeps every line it logged
  if (!out_) throw std::runtime_error(path_ + ": write failed");
}

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

std::string progress_line(int step, int total, double loss, double lr, double tokens_per_s, double elapsed_s) {
  const double eta = step > 0 ? elapsed_s / step * (total - step) : 0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %d/%d | loss %.4f | lr %.2e | %.0f tok/s | elapsed %s | eta %s", step, total,
                loss, lr, tokens_per_s, format_duration(elapsed_s).c_str(), format_duration(eta).c_str());
  return buf;
}

}  // namespace lora
