// One .safetensors file, memory-mapped and validated: an 8-byte little-endian header length
// N, N bytes of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
// "__metadata__": {..}}, then the raw little-endian tensor bytes, offsets relative to the
// byte after the header. The file comes from anywhere, so every length, offset, dtype and
// shape is checked when the file is opened, before any tensor byte is looked at: afterwards a
// SafetensorsTensor's bytes lie inside the mapping. Nothing is read until a caller touches
// the bytes, so a rank that copies only its shard pages in only (about) its shard.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lora {

// The dtypes of the safetensors format. Only F32, F16 and BF16 can be base weights; the
// others are recognised so that a file holding, say, an int64 buffer is not "malformed".
enum class StDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };
const char* st_dtype_name(StDtype t);
size_t st_dtype_bytes(StDtype t);

struct SafetensorsTensor {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<uint64_t> shape;
  const unsigned char* data = nullptr;  // inside the mapping
  uint64_t begin = 0, bytes = 0;        // offset in the file's data section, length

  uint64_t elements() const { return bytes / st_dtype_bytes(dtype); }
  std::string shape_str() const;  // "[768, 2304]"
};

// Element k of an F32, F16 or BF16 tensor, widened to float (the data may be unaligned: read
// with memcpy). Throws std::logic_error for another dtype: callers check the dtype first.
float st_element(const SafetensorsTensor& t, uint64_t k);

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws InputError naming the file (and the tensor) when the
  // header length runs past the file or is absurd, the header is not a JSON object, a
  // tensor's dtype is unknown, its shape or offsets are not non-negative integers, its
  // offsets run past the data or overlap another tensor's, its byte length is not
  // shape x dtype size, or a name appears twice.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  uint64_t data_start() const { return data_start_; }  // file offset of the data section
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;
  // Unmaps from this process the pages holding t (madvise MADV_DONTNEED: the bytes stay in
  // the page cache and are read again if touched). Called once a rank has copied its slice,
  // so loading holds one tensor's file pages in its resident set, not its whole share of
  // the file (30.7 MiB of a 61 MiB base at tp 2; 44 GB of GPT-3 175B's at tp 8).
  // read_hf_base_weights releases a large tensor every few MiB as it copies it.
  void release(const SafetensorsTensor& t) const { release(t.data, t.bytes); }
  // The same for the pages of bytes [p, p + n) of this file's mapping.
  void release(const unsigned char* p, uint64_t n) const;

 private:
  std::string path_;
  const unsigned char* map_ = nullptr;
  uint64_t size_ = 0, data_start_ = 0;
  std::map<std::string, SafetensorsTensor> tensors_;
};

}  // namespace lora
