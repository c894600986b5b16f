// A 64-bit hash of a byte stream, for the checkpoint checksum and the base-model
// fingerprint. Not cryptographic: it catches torn writes, truncation and flipped bits,
// not deliberate tampering. Eight bytes per step (a murmur3-style mix per word and its
// 64-bit finaliser at the end), so hashing a multi-GB weights file costs about as much
// as reading it. The digest does not depend on how the stream is cut into update() calls.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace lora {

class Hash64 {
 public:
  Hash64& update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    len_ += n;
    if (ntail_ > 0) {  // complete the word the previous call left unfinished
      const size_t take = std::min(n, 8 - ntail_);
      std::memcpy(tail_ + ntail_, p, take);
      ntail_ += take, p += take, n -= take;
      if (ntail_ < 8) return *this;
      mix(load(tail_));
      ntail_ = 0;
    }
    for (; n >= 8; p += 8, n -= 8) mix(load(p));
    std::memcpy(tail_, p, n);
    ntail_ = n;
    return *this;
  }
  // A value's bytes (numbers, in this machine's little-endian order).
  template <typename T>
  Hash64& add(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    return update(&v, sizeof v);
  }
  // A string, length first, so ("ab","c") and ("a","bc") differ.
  Hash64& add(const std::string& s) { return add(static_cast<uint64_t>(s.size())).update(s.data(), s.size()); }

  uint64_t digest() const {
    uint64_t h = h_;
    if (ntail_ > 0) {
      unsigned char last[8] = {};
      std::memcpy(last, tail_, ntail_);
      h = step(h, load(last));
    }
    h ^= len_;  // so zero bytes at the end still count
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull, h ^= h >> 33, h *= 0xc4ceb9fe1a85ec53ull, h ^= h >> 33;
    return h;
  }

 private:
  static uint64_t load(const unsigned char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  }
  static uint64_t step(uint64_t h, uint64_t w) {
    w *= 0x87c37b91114253d5ull, w = (w << 31) | (w >> 33), w *= 0x4cf5ad432745937full;
    h ^= w;
    h = (h << 27) | (h >> 37);
    return h * 5 + 0x52dce729;
  }
  void mix(uint64_t w) { h_ = step(h_, w); }

  uint64_t h_ = 0x9e3779b97f4a7c15ull;
  uint64_t len_ = 0;
  unsigned char tail_[8] = {};
  size_t ntail_ = 0;
};

}  // namespace lora
