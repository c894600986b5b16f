// Validation before use: the header is parsed into plain numbers, every number is checked
// against the file's real size with overflow-safe arithmetic, and only then does a tensor
// get a pointer into the mapping. Offsets may leave gaps (the reference library refuses
// them; nothing here depends on their absence) but never overlap.
#include "io/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "io/input_error.h"
#include "model/dtype.h"
#include "io/json_preview.h"

namespace lora {

namespace {

// The reference implementation's limit: a header larger than this is not a real model's.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  const char* name;
  StDtype type;
  size_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", StDtype::F64, 8},   {"F32", StDtype::F32, 4},   {"F16", StDtype::F16, 2},   {"BF16", StDtype::BF16, 2},
    {"I64", StDtype::I64, 8},   {"I32", StDtype::I32, 4},   {"I16", StDtype::I16, 2},   {"I8", StDtype::I8, 1},
    {"U64", StDtype::U64, 8},   {"U32", StDtype::U32, 4},   {"U16", StDtype::U16, 2},   {"U8", StDtype::U8, 1},
    {"BOOL", StDtype::BOOL, 1}, {"F8_E4M3", StDtype::F8_E4M3, 1}, {"F8_E5M2", StDtype::F8_E5M2, 1},
};

uint64_t json_u64(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number_unsigned()) throw InputError(what + " must be a non-negative integer (got " + json_preview(v) + ")");
  return v.get<uint64_t>();
}

}  // namespace

const char* st_dtype_name(StDtype t) {
  for (const DtypeInfo& d : kDtypes)
    if (d.type == t) return d.name;
  return "?";
}

size_t st_dtype_bytes(StDtype t) {
  for (const DtypeInfo& d : kDtypes)
    if (d.type == t) return d.bytes;
  return 1;
}

std::string SafetensorsTensor::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path + ": not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw InputError(path + ": " + std::to_string(size_) + " bytes: too short for a safetensors file (8-byte header length)");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (m == MAP_FAILED) throw InputError(path + ": cannot memory-map: " + std::strerror(errno));
  map_ = static_cast<const unsigned char*>(m);
  try {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];  // little-endian
    if (header_len > size_ - 8)
      throw InputError(path + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                       std::to_string(size_) + " bytes; truncated, or not a safetensors file?)");
    if (header_len > kMaxHeaderBytes)
      throw InputError(path + ": header length " + std::to_string(header_len) + " is larger than any model's (limit " +
                       std::to_string(kMaxHeaderBytes) + ")");
    data_start_ = 8 + header_len;
    const uint64_t data_bytes = size_ - data_start_;

    // Duplicate names would be silently merged by the parser: catch them as they are read.
    std::string duplicate;
    std::set<std::string> names;
    const nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t ev,
                                                           nlohmann::json& parsed) {
      if (depth == 1 && ev == nlohmann::json::parse_event_t::key && duplicate.empty() &&
          !names.insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    };
    const char* text = reinterpret_cast<const char*>(map_ + 8);
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text, text + header_len, on_event);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(path + ": the header (" + std::to_string(header_len) + " bytes) is not valid JSON: " + e.what());
    }
    if (!header.is_object()) throw InputError(path + ": the header is not a JSON object (got " + json_preview(header) + ")");
    if (!duplicate.empty()) throw InputError(path + ": tensor '" + duplicate + "' appears twice in the header");

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") continue;  // free-form strings
      const std::string what = path + ": tensor '" + name + "'";
      if (!entry.is_object()) throw InputError(what + ": expected {dtype, shape, data_offsets} (got " + json_preview(entry) + ")");
      for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!entry.contains(key)) throw InputError(what + ": no '" + key + "' in its header entry");
      SafetensorsTensor t;
      t.name = name;
      const nlohmann::json& dt = entry["dtype"];
      const DtypeInfo* info = nullptr;
      for (const DtypeInfo& d : kDtypes)
        if (dt.is_string() && dt.get<std::string>() == d.name) info = &d;
      if (!info) throw InputError(what + ": unknown dtype " + json_preview(dt) + " (safetensors dtypes: F64, F32, F16, BF16, I64, ...)");
      t.dtype = info->type;

      const nlohmann::json& shape = entry["shape"];
      if (!shape.is_array()) throw InputError(what + ": shape must be a list of integers (got " + json_preview(shape) + ")");
      uint64_t elements = 1;
      bool overflow = false;
      for (const auto& dim : shape) {
        const uint64_t n = json_u64(dim, what + ": every shape dimension");
        t.shape.push_back(n);
        if (n != 0 && elements > UINT64_MAX / n) overflow = true;
        elements = overflow ? 0 : elements * n;
      }
      const nlohmann::json& off = entry["data_offsets"];
      if (!off.is_array() || off.size() != 2)
        throw InputError(what + ": data_offsets must be [begin, end] (got " + json_preview(off) + ")");
      const uint64_t begin = json_u64(off[0], what + ": data_offsets begin");
      const uint64_t end = json_u64(off[1], what + ": data_offsets end");
      if (begin > end) throw InputError(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] end before they begin");
      if (end > data_bytes)
        throw InputError(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                         "] run past the data section (" + std::to_string(data_bytes) + " bytes; truncated file?)");
      if (overflow || elements > UINT64_MAX / info->bytes || elements * info->bytes != end - begin)
        throw InputError(what + ": shape " + t.shape_str() + " of " + info->name + " needs " +
                         (overflow || elements > UINT64_MAX / info->bytes ? std::string("more than 2^64")
                                                                          : std::to_string(elements * info->bytes)) +
                         " bytes, but data_offsets give " + std::to_string(end - begin));
      t.begin = begin;
      t.bytes = end - begin;
      t.data = map_ + data_start_ + begin;
      tensors_.emplace(name, std::move(t));
    }

    std::vector<const SafetensorsTensor*> by_offset;
    for (const auto& kv : tensors_)
      if (kv.second.bytes > 0) by_offset.push_back(&kv.second);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const SafetensorsTensor* a, const SafetensorsTensor* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const SafetensorsTensor& a = *by_offset[i - 1];
      const SafetensorsTensor& b = *by_offset[i];
      if (b.begin < a.begin + a.bytes)
        throw InputError(path + ": tensor '" + b.name + "' (bytes " + std::to_string(b.begin) + ".." +
                         std::to_string(b.begin + b.bytes) + ") overlaps tensor '" + a.name + "' (bytes " +
                         std::to_string(a.begin) + ".." + std::to_string(a.begin + a.bytes) + ")");
    }
  } catch (...) {
    ::munmap(const_cast<unsigned char*>(map_), size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), size_);
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void SafetensorsFile::release(const unsigned char* p, uint64_t n) const {
  if (n == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  // A read-only shared file mapping: dropping pages loses nothing, even a neighbour's.
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

namespace {
float f16_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);  // inf / nan
  else if (exp != 0) bits = sign | ((exp + 112) << 23) | (man << 13);
  else if (man == 0) bits = sign;
  else {  // subnormal: normalise
    int e = -1;
    uint32_t m = man;
    do {
      ++e;
      m <<= 1;
    } while (!(m & 0x400u));
    bits = sign | ((112 - e) << 23) | ((m & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace

float st_element(const SafetensorsTensor& t, uint64_t k) {
  switch (t.dtype) {
    case StDtype::F32: {
      float f;
      std::memcpy(&f, t.data + 4 * k, 4);
      return f;
    }
    case StDtype::F16: {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * k, 2);
      return f16_to_float(h);
    }
    case StDtype::BF16: {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * k, 2);
      return bf16_to_float(h);
    }
    default:
      throw std::logic_error(std::string("st_element: ") + st_dtype_name(t.dtype) + " is not a float dtype");
  }
}

}  // namespace lora
