// model.dtype nf4 (issue 24; model/nf4_weight.h): a rank's NF4 shards are bitsandbytes'
// quantization of the whole tensor at every tp; the dequantizing GEMM equals the fp32 GEMM on
// the dequantized weights; an NF4 model's step equals an fp32 model's holding the dequantized
// weights; its bytes are what the estimate says; a base file read into NF4 is the seeded one.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/base_weights.h"
#include "model/gpt.h"
#include "model/memory_estimate.h"
#include "model/nf4.h"
#include "model/ops/cpu/frozen_gemm.h"
#include "model/ops/linear.h"
#include "model/rng.h"
#include "tests/model_shape.h"

namespace lora {
namespace {

ModelConfig gpt_nf4(const char* dtype) {
  ModelConfig m = test::model_shape(2, 4, 256, 300, 32);  // every rank's rows whole 64-blocks at tp 1, 2, 4
  m.init_std = 0.1f;
  m.dtype = dtype;
  return m;
}

ModelConfig llama_nf4(const char* dtype) {
  ModelConfig m = test::model_shape(2, 8, 256, 300, 32);
  m.arch = "llama";
  m.n_kv_head = 4;  // grouped-query attention that tp 4 still splits
  m.head_dim = 32;
  m.ffn = 512;
  m.tie_embeddings = false;
  m.init_std = 0.1f;
  m.dtype = dtype;
  return m;
}

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / std::max(den, 1e-300));
}
template <typename A, typename B>
double rel_err(const std::vector<A>& a, const std::vector<B>& b) {
  return rel_err(std::vector<double>(a.begin(), a.end()), std::vector<double>(b.begin(), b.end()));
}

// The full tensor s of an fp32 model (tp 1) as a row-major vector.
std::vector<float> full_tensor(GptModel<float>& f, const std::string& name) {
  const TensorSpec& s = f.base_layout().at(name);
  return std::vector<float>(f.base().begin() + s.offset, f.base().begin() + s.offset + s.local_size());
}

// At tp 1 each NF4 shard holds exactly bitsandbytes' quantization of each of the tensor's
// segments (the whole GPT-2 c_attn; Llama's q, k, v and gate, up on their own): the same
// packed codes, absmax codes, nested scales and offsets as model/nf4.h's quantize(), which
// tests/nf4 checks against an independent numpy implementation.
void expect_bitsandbytes_quantization(const ModelConfig& fp32, const ModelConfig& nf4cfg) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  GptModel<float> f(fp32, l, comm, 1, 8), q(nf4cfg, l, comm, 1, 8);
  f.init_base_from_seed(21);
  q.init_base_from_seed(21);
  int checked = 0;
  for (const TensorSpec& s : q.base_layout().tensors) {
    if (s.dtype != DType::NF4) continue;
    const std::vector<float> w = full_tensor(f, s.name);
    const uint8_t* shard = q.base_nf4().data() + s.offset;
    const Nf4ShardLayout& L = s.nf4;
    const Nf4Row* rows = reinterpret_cast<const Nf4Row*>(shard + L.row_table);
    const float* nested = reinterpret_cast<const float*>(shard + L.nested);
    for (const Nf4Segment& seg : nf4_segments(s)) {
      const int row0 = seg.first_row, seg_rows = seg.rows;
      const nf4::Nf4Tensor t = nf4::quantize(w.data() + size_t(row0) * s.cols, {seg_rows, s.cols});
      ASSERT_EQ(0, std::memcmp(t.codes.data(), shard + L.codes + size_t(row0) * s.cols / 2, t.codes.size())) << s.name;
      ASSERT_EQ(0, std::memcmp(t.absmax_codes.data(), shard + L.absmax + size_t(row0) * L.blocks_per_row,
                               t.absmax_codes.size()))
          << s.name;
      const uint32_t g0 = rows[row0].first_group;
      for (size_t g = 0; g < t.nested_scales.size(); ++g) ASSERT_EQ(t.nested_scales[g], nested[g0 + g]) << s.name;
      ASSERT_EQ(t.offset, rows[row0].offset) << s.name;
      ASSERT_EQ(0u, rows[row0].first_block) << s.name;
      // Dequantized through the GEMM's path: bitsandbytes' values exactly.
      std::vector<float> got(size_t(seg_rows) * s.cols);
      nf4_dequantize_rows(shard, L, row0, row0 + seg_rows, got.data());
      ASSERT_EQ(nf4::dequantize(t), got) << s.name;
      ++checked;
    }
    EXPECT_EQ(0, std::memcmp(shard + L.map, nf4::dynamic_map_signed().data(), 1024)) << s.name;
  }
  EXPECT_EQ(checked, fp32.arch == "llama" ? 2 * 7 : 2 * 4);
}

TEST(Nf4Model, GptShardsAreBitsandbytesQuantizationOfEachTensor) {
  expect_bitsandbytes_quantization(gpt_nf4("fp32"), gpt_nf4("nf4"));
}
TEST(Nf4Model, LlamaShardsQuantizeQKVGateUpEachOnItsOwn) {
  expect_bitsandbytes_quantization(llama_nf4("fp32"), llama_nf4("nf4"));
}

// The two phases run for every TP rank of tp 2 and 4 in one process (the model does the same
// with an all-gather): each rank's dequantized rows equal the tp 1 tensor's at the same full
// positions, bit for bit, so an NF4 run is layout-invariant like an fp32 one.
TEST(Nf4Model, EveryTpDequantizesToTheSameWeights) {
  for (const ModelConfig& cfg : {gpt_nf4("nf4"), llama_nf4("nf4")}) {
    MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
    LoraConfig l;
    ModelConfig fcfg = cfg;
    fcfg.dtype = "fp32";
    GptModel<float> f(fcfg, l, comm, 1, 8), q(cfg, l, comm, 1, 8);
    f.init_base_from_seed(4);
    q.init_base_from_seed(4);
    for (const int tp : {2, 4}) {
      const ParamLayout layout = base_layout(cfg, tp);
      for (const TensorSpec& s : layout.tensors) {
        if (s.dtype != DType::NF4) continue;
        SCOPED_TRACE(s.name + " at tp " + std::to_string(tp));
        const std::vector<float> w = full_tensor(f, s.name);
        std::vector<float> whole(q.base_layout().at(s.name).local_size());
        q.base_tensor_values(q.base_layout().at(s.name), whole.data());
        const size_t blocks = size_t(s.nf4.rows) * s.nf4.blocks_per_row;
        std::vector<std::vector<uint8_t>> shards(tp, std::vector<uint8_t>(s.nf4.bytes));
        std::vector<float> absmax(blocks * tp);
        for (int r = 0; r < tp; ++r) {
          std::vector<float> local(s.local_size());
          for (int lr = 0; lr < s.local_rows; ++lr)
            for (int lc = 0; lc < s.local_cols; ++lc)
              local[size_t(lr) * s.local_cols + lc] = w[size_t(s.global_row(lr, r)) * s.cols + s.global_col(lc, r)];
          nf4_quantize_local(s, r, local.data(), shards[r].data(), absmax.data() + r * blocks);
        }
        for (int r = 0; r < tp; ++r) {
          nf4_finish_local(s, tp, r, absmax.data(), shards[r].data());
          std::vector<float> got(s.local_size());
          nf4_dequantize_rows(shards[r].data(), s.nf4, 0, s.local_rows, got.data());
          for (int lr = 0; lr < s.local_rows; ++lr)
            for (int lc = 0; lc < s.local_cols; ++lc)
              ASSERT_EQ(got[size_t(lr) * s.local_cols + lc],
                        whole[size_t(s.global_row(lr, r)) * s.cols + s.global_col(lc, r)])
                  << "rank " << r << " row " << lr << " col " << lc;
        }
      }
    }
  }
}

// The dequantizing GEMM against the fp32 GEMM on the dequantized matrix, forward and input
// gradient (=, +=), on shapes with several row blocks; and the vector kernel this CPU picks
// against the scalar one (the double path), exactly.
TEST(Nf4Gemm, EqualsTheFp32GemmOnTheDequantizedWeights) {
  ParamLayout p;
  const int N = 1100, K = 3072, M = 37;  // several 4 MiB row blocks; 48 blocks a row
  const TensorSpec& s = p.add("w", N, K, Shard::Rows, 1, DType::NF4);
  std::vector<float> w(size_t(N) * K), x(size_t(M) * K), dy(size_t(M) * N);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(normal_element(1, RngPurpose::BaseInit, 0, i, 0.05));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(normal_element(2, RngPurpose::BaseInit, 0, i, 1.0));
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = float(normal_element(3, RngPurpose::BaseInit, 0, i, 1.0));
  std::vector<uint8_t> shard(s.nf4.bytes);
  std::vector<float> absmax(size_t(N) * K / 64);
  nf4_quantize_local(s, 0, w.data(), shard.data(), absmax.data());
  nf4_finish_local(s, 1, 0, absmax.data(), shard.data());
  std::vector<float> deq(w.size());
  std::vector<double> deq_double(w.size());
  nf4_dequantize_rows(shard.data(), s.nf4, 0, N, deq.data());
  nf4_dequantize_rows(shard.data(), s.nf4, 0, N, deq_double.data());
  for (size_t i = 0; i < deq.size(); ++i) ASSERT_EQ(double(deq[i]), deq_double[i]) << i << " (" << nf4_dequantize_kernel() << ")";
  for (const std::string& unit : nf4_dequantize_units()) {  // every unit this CPU has, rows not starting at 0
    std::vector<float> part(size_t(N - 3) * K);
    nf4_dequantize_rows_with(unit, shard.data(), s.nf4, 3, N, part.data());
    ASSERT_EQ(0, std::memcmp(part.data(), deq.data() + size_t(3) * K, part.size() * sizeof(float))) << unit;
    std::printf("NF4 dequantization unit %s: equal to the scalar loop\n", unit.c_str());
  }
  const WeightView<float> q(shard.data(), &s.nf4);
  std::vector<float> y(size_t(M) * N), y_ref(y.size()), dx(size_t(M) * K), dx_ref(dx.size()), dxa(dx.size(), 1.0f),
      dxa_ref(dx.size(), 1.0f);
  linear_forward<float>(y.data(), x.data(), q, nullptr, M, K, N);
  linear_forward<float>(y_ref.data(), x.data(), deq.data(), nullptr, M, K, N);
  linear_backward_input<float>(dx.data(), dy.data(), q, M, K, N, false);
  linear_backward_input<float>(dx_ref.data(), dy.data(), deq.data(), M, K, N, false);
  linear_backward_input<float>(dxa.data(), dy.data(), q, M, K, N, true);
  linear_backward_input<float>(dxa_ref.data(), dy.data(), deq.data(), M, K, N, true);
  EXPECT_LT(rel_err(y, y_ref), 1e-6);
  EXPECT_LT(rel_err(dx, dx_ref), 1e-6);
  EXPECT_LT(rel_err(dxa, dxa_ref), 1e-6);
  // The quantization error itself, for the record: NF4 keeps a Gaussian matrix to ~10 %.
  std::printf("NF4 GEMM (%s): |W - W'| / |W| = %.4f\n", frozen_gemm_kernel(DType::NF4).c_str(), rel_err(deq, w));
  EXPECT_LT(rel_err(deq, w), 0.12);
  EXPECT_GT(rel_err(deq, w), 0.01);  // it is 4 bits, not a copy
}

// An fp32 model holding q's weights dequantized (the embeddings widened from bf16).
void copy_dequantized(GptModel<float>& q, GptModel<float>& f) {
  for (const TensorSpec& s : q.base_layout().tensors)
    q.base_tensor_values(s, f.base_tensor(s.name));
}

// The equivalence: forward and backward of an NF4 model equal those of the same model
// with the dequantized weights in fp32, to 1e-5 relative (measured ~1e-7: the GEMMs only sum
// in another order), GPT and Llama, with and without recompute.
TEST(Nf4Model, StepEqualsTheFp32ModelOnTheDequantizedWeights) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  for (bool& t : l.targets) t = true;
  const int B = 2, T = 16;
  std::vector<int32_t> in(B * T), tg(B * T);
  std::vector<float> mask(B * T, 1.0f);
  for (int i = 0; i < B * T; ++i) in[i] = (i * 37 + 11) % 300, tg[i] = (i * 53 + 7) % 300;
  const MicroBatch mb{in.data(), tg.data(), mask.data(), B, T};
  for (const ModelConfig& cfg : {gpt_nf4("nf4"), llama_nf4("nf4")})
    for (const bool recompute : {false, true}) {
      SCOPED_TRACE(cfg.arch + (recompute ? ", recompute" : ""));
      ModelConfig fcfg = cfg;
      fcfg.dtype = "fp32";
      GptModel<float> q(cfg, l, comm, B, T, recompute), f(fcfg, l, comm, B, T, recompute);
      q.init_base_from_seed(3);
      copy_dequantized(q, f);
      double loss[2];
      std::vector<float> grads[2];
      GptModel<float>* models[2] = {&q, &f};
      for (int k = 0; k < 2; ++k) {
        models[k]->init_lora(4);
        for (size_t i = 0; i < models[k]->lora_params().size(); ++i)  // B != 0: the adapters act in the forward
          models[k]->lora_params()[i] += float(normal_element(8, RngPurpose::BaseInit, 1, i, 0.02));
        models[k]->zero_grads();
        loss[k] = models[k]->step(mb, B * T, DropoutContext{}, true);
        grads[k] = models[k]->lora_grads();
      }
      std::printf("%s first-step loss: nf4 %.9f, fp32 on dequantized %.9f; grads rel %.2e\n", cfg.arch.c_str(), loss[0],
                  loss[1], rel_err(grads[0], grads[1]));
      EXPECT_LT(std::abs(loss[0] - loss[1]) / loss[1], 1e-5);
      EXPECT_LT(rel_err(grads[0], grads[1]), 1e-5);
    }
}

// What an NF4 rank allocates is what the layout and the estimate say, byte for byte, and the
// matrices cost 4.127 bits a weight plus their row tables and one 1 KiB map each.
TEST(Nf4Model, BytesAreTheEstimate) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  for (const ModelConfig& cfg : {gpt_nf4("nf4"), llama_nf4("nf4")}) {
    GptModel<float> q(cfg, l, comm, 2, 16);
    EXPECT_EQ(q.frozen_bytes(),
              q.base().size() * sizeof(float) + q.base_bf16().size() * sizeof(uint16_t) + q.base_nf4().size());
    EXPECT_EQ(estimate_model_memory(cfg, l, 1, 2, 16).frozen_weights, q.frozen_bytes());
    size_t weights = 0, bytes = 0;
    for (const TensorSpec& s : q.base_layout().tensors)
      if (s.dtype == DType::NF4) {
        weights += s.local_size();
        bytes += s.nf4.bytes;
        size_t expect = s.local_size() / 2 + s.local_size() / 64 + 4 * size_t(s.nf4.n_nested) + 1024 +
                        sizeof(Nf4Row) * s.local_rows;
        EXPECT_EQ((expect + 63) / 64 * 64, s.nf4.bytes) << s.name;
      }
    std::printf("%s: %zu NF4 weights in %zu bytes (%.3f bits a weight at this small size)\n", cfg.arch.c_str(),
                weights, bytes, 8.0 * bytes / weights);
    EXPECT_EQ(bytes, q.base_nf4().size());
  }
}

// A base file read into NF4 is, byte for byte, the seeded NF4 model of the same weights; a NaN
// is refused naming the tensor.
TEST(Nf4Model, ReadsABaseFileIntoTheSameShardsAsTheSeed) {
  MpiCommunicator comm(MPI_COMM_SELF, 1, 1);
  LoraConfig l;
  GptModel<float> f(gpt_nf4("fp32"), l, comm, 1, 8), seeded(gpt_nf4("nf4"), l, comm, 1, 8),
      read(gpt_nf4("nf4"), l, comm, 1, 8);
  f.init_base_from_seed(9);
  seeded.init_base_from_seed(9);
  const std::string path = std::string(LORA_BINARY_DIR) + "/nf4_read_test.h5";
  write_base_weights(path, f.base_layout(), f.base().data());
  read_base_weights(path, read.base_layout(), 0, read.base().data(), read.base_bf16().data(), &read.nf4_staging());
  read.finish_nf4();
  EXPECT_EQ(seeded.base_nf4(), read.base_nf4());
  EXPECT_EQ(seeded.base_bf16(), read.base_bf16());
  EXPECT_EQ(seeded.base(), read.base());
  EXPECT_THROW(read_base_weights(path, read.base_layout(), 0, read.base().data(), read.base_bf16().data()),
               std::logic_error);  // an NF4 layout needs its staging
  std::remove(path.c_str());

  const TensorSpec& s = read.base_layout().at("h.1.mlp.fc.weight");
  std::vector<float> local(s.local_size(), 0.5f);
  local[3 * s.local_cols + 5] = std::numeric_limits<float>::quiet_NaN();
  try {
    read.nf4_staging().quantize(s, local.data());
    FAIL() << "a NaN was quantized";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'h.1.mlp.fc.weight'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("row 3, column 5"), std::string::npos) << e.what();
  }
}

// Rows that are not whole 64-weight blocks on every rank are refused, naming the tensor.
TEST(Nf4Model, RefusesRowsThatAreNotWholeBlocks) {
  ModelConfig m = test::model_shape(1, 2, 96, 300, 32);  // 96 weights a row
  m.dtype = "nf4";
  try {
    (void)base_layout(m, 1);
    FAIL() << "d_model 96 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'h.0.attn.qkv.weight'"), std::string::npos) << e.what();
  }
  ModelConfig ok = test::model_shape(1, 4, 128, 300, 32);
  ok.dtype = "nf4";
  EXPECT_NO_THROW((void)base_layout(ok, 2));
  try {
    (void)base_layout(ok, 4);  // attn.proj: 32 columns a rank
    FAIL() << "tp 4 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'h.0.attn.proj.weight'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lora
