// Quantizes one float32 array with model/nf4 and writes every part of the result, for
// tests/nf4/nf4_reference_test.py to compare with its numpy implementation of bitsandbytes:
//   nf4_driver <input.f32> <blocksize> <outdir>   (input: raw little-endian float32)
//   nf4_driver --map <out.f32>                    (the signed dynamic map, 256 float32)
//   nf4_driver --nf4-codes|--dynamic-codes <in.f32> <out.u8>
//                                 (quantize_nf4_value / quantize_dynamic_value of each value)
// outdir gets codes.u8 (packed), absmax.f32 (first stage), absmax_codes.u8, nested_scales.f32,
// dequant.f32 (the whole tensor), rows.f32 (dequantize_rows of the array viewed as
// [n / cols, cols] with cols = 3, rows 1 .. end, when n >= 6) and meta.json (offset bits,
// blocks, bytes). A refused input: the message on stderr and exit status 3.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/nf4.h"

namespace {

template <typename T>
void write_raw(const std::string& path, const T* data, size_t count) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(T)));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot read " + path);
  const auto size = static_cast<size_t>(f.tellg());
  std::vector<float> v(size / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lora::nf4;
  try {
    if (argc == 3 && std::string(argv[1]) == "--map") {
      write_raw(argv[2], dynamic_map_signed().data(), 256);
      return 0;
    }
    if (argc == 4 && (std::string(argv[1]) == "--nf4-codes" || std::string(argv[1]) == "--dynamic-codes")) {
      const std::vector<float> x = read_floats(argv[2]);
      std::vector<uint8_t> codes(x.size());
      const bool nf4 = std::string(argv[1]) == "--nf4-codes";
      for (size_t i = 0; i < x.size(); ++i)
        codes[i] = nf4 ? quantize_nf4_value(x[i]) : quantize_dynamic_value(dynamic_map_signed(), x[i]);
      write_raw(argv[3], codes.data(), codes.size());
      return 0;
    }
    if (argc != 4) {
      std::cerr << "usage: nf4_driver <input.f32> <blocksize> <outdir> | --map <out.f32>\n";
      return 2;
    }
    const std::vector<float> x = read_floats(argv[1]);
    const int blocksize = std::stoi(argv[2]);
    const std::string dir = argv[3];
    const auto n = static_cast<int64_t>(x.size());

    Nf4Tensor t;
    try {
      t = quantize(x.data(), {n}, blocksize);
    } catch (const std::invalid_argument& e) {
      std::cerr << "input: " << e.what() << "\n";
      return 3;
    }
    // The first stage alone, for its fp32 absmax.
    std::vector<uint8_t> packed((n + 1) / 2);
    std::vector<float> absmax(t.num_blocks());
    quantize_blocks(x.data(), n, blocksize, packed.data(), absmax.data());
    if (packed != t.codes) throw std::logic_error("quantize_blocks and quantize disagree");

    write_raw(dir + "/codes.u8", t.codes.data(), t.codes.size());
    write_raw(dir + "/absmax.f32", absmax.data(), absmax.size());
    write_raw(dir + "/absmax_codes.u8", t.absmax_codes.data(), t.absmax_codes.size());
    write_raw(dir + "/nested_scales.f32", t.nested_scales.data(), t.nested_scales.size());
    const std::vector<float> dq = dequantize(t);
    write_raw(dir + "/dequant.f32", dq.data(), dq.size());
    if (n >= 6) {
      Nf4Tensor m = t;
      m.shape = {n / 3, 3};
      std::vector<float> rows(static_cast<size_t>((n / 3 - 1) * 3));
      dequantize_rows(m, 1, n / 3, rows.data());
      write_raw(dir + "/rows.f32", rows.data(), rows.size());
    }
    uint32_t offset_bits;
    std::memcpy(&offset_bits, &t.offset, 4);
    std::ofstream meta(dir + "/meta.json");
    meta << "{\"offset_bits\": " << offset_bits << ", \"blocks\": " << t.num_blocks() << ", \"bytes\": " << t.bytes()
         << ", \"nf4_bytes\": " << nf4_bytes(n, blocksize) << "}\n";
    return meta ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "nf4_driver: " << e.what() << "\n";
    return 1;
  }
}
