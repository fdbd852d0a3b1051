// CUDA attention vs the float64 reference. The flash kernel (bf16 tensor cores) is held to the
// FlashAttention tolerance rule: its error may be at most 2× the error of the same computation
// done exactly except for the bf16 roundings the kernel makes (q, k, v and the softmax weights),
// plus a small absolute term; a fixed epsilon is either too loose for benign inputs or too tight
// for large scores. The naive kernel is f32 throughout and held to f32 tolerance. Skipped without
// a usable GPU.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/reference_backend.h"
#include "kernels/cuda/attention/attention_choice.h"
#include "kernels/cuda/attention/attention_tuning.h"
#include "kernels/cuda/attention/flash_attention.cuh"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/scoped_env.h"

namespace ds {
namespace {

using test::AllClose;
using test::Poisoned;
using test::Random;
using test::Strided;
using test::UntouchedOutside;

constexpr double kF32Rtol = 2e-5;

struct Shape {
  int64_t nq, nk, heads, dh;
  bool fused;  // q/k/v as slices of one [N, 3, H, dh] buffer
  float amplitude = 1.0f;
};

std::string Name(const Shape& s) {
  return "nq " + std::to_string(s.nq) + " nk " + std::to_string(s.nk) + " heads " + std::to_string(s.heads) + " dh " +
         std::to_string(s.dh) + (s.fused ? " fused" : "") + " amplitude " + std::to_string(s.amplitude);
}

struct Inputs {
  HostBuffer qb, kb, vb;
  Tensor q, k, v;
};

Inputs MakeInputs(std::mt19937& rng, const Shape& s) {
  Inputs in;
  const int64_t hd = s.heads * s.dh;
  const float a = s.amplitude;
  if (s.fused) {
    in.qb = Random(rng, static_cast<size_t>(std::max(s.nq, s.nk) * 3 * hd), -a, a);
    in.q = Strided(in.qb.data(), {s.nq, s.heads, s.dh}, 3 * hd);
    in.k = Strided(in.qb.data() + hd, {s.nk, s.heads, s.dh}, 3 * hd);
    in.v = Strided(in.qb.data() + 2 * hd, {s.nk, s.heads, s.dh}, 3 * hd);
  } else {
    in.qb = Random(rng, static_cast<size_t>(s.nq * hd), -a, a);
    in.kb = Random(rng, static_cast<size_t>(s.nk * hd), -a, a);
    in.vb = Random(rng, static_cast<size_t>(s.nk * hd));
    in.q = in.qb.view({s.nq, s.heads, s.dh});
    in.k = in.kb.view({s.nk, s.heads, s.dh});
    in.v = in.vb.view({s.nk, s.heads, s.dh});
  }
  return in;
}

// max |got − want| / (|want| + rms(want)): the metric of AllClose, as a number.
double WorstError(const Tensor& got, const Tensor& want) {
  const double rms = test::Rms(want);
  Rows g(got), w(want);
  double worst = 0;
  for (int64_t i = 0; i < w.count(); ++i) {
    for (int64_t j = 0; j < w.width(); ++j) {
      const double e = std::abs(double{g[i][j]} - w[i][j]) / (std::abs(double{w[i][j]}) + rms);
      worst = std::isnan(e) ? std::numeric_limits<double>::infinity() : std::max(worst, e);
    }
  }
  return worst;
}

float RoundBf16(float x) { return cuda::flash::Bf16ToFloat(cuda::flash::Bf16Bits(x)); }

// softmax(q·kᵀ·scale)·v in float64 except for the roundings the flash kernel makes: q, k, v to
// bf16 on the way in, the softmax weights to bf16 before P·V (their sum stays unrounded).
void SamePrecisionBaseline(const Tensor& q, const Tensor& k, const Tensor& v, double scale, const Tensor& out) {
  const int64_t nq = q.shape[0], nk = k.shape[0], heads = q.shape[1], dh = q.shape[2];
  auto rounded = [&](const Tensor& t, int64_t n) {  // [heads][n][dh], contiguous per head
    Rows r(t);
    std::vector<double> out_v(static_cast<size_t>(heads * n * dh));
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t d = 0; d < dh; ++d)
          out_v[static_cast<size_t>((h * n + i) * dh + d)] = RoundBf16(r[i * heads + h][d]);
      }
    }
    return out_v;
  };
  const std::vector<double> qd = rounded(q, nq), kd = rounded(k, nk), vd = rounded(v, nk);
  Rows orows(out);
  std::vector<double> s(static_cast<size_t>(nk)), acc(static_cast<size_t>(dh));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < nq; ++i) {
      const double* qi = &qd[static_cast<size_t>((h * nq + i) * dh)];
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        const double* kj = &kd[static_cast<size_t>((h * nk + j) * dh)];
        double dot = 0;
        for (int64_t d = 0; d < dh; ++d) dot += qi[d] * kj[d];
        s[j] = dot * scale;
        max = std::max(max, s[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < nk; ++j) {
        const double p = std::exp(s[j] - max);
        sum += p;
        const double p_bf16 = RoundBf16(static_cast<float>(p));
        const double* vj = &vd[static_cast<size_t>((h * nk + j) * dh)];
        for (int64_t d = 0; d < dh; ++d) acc[d] += p_bf16 * vj[d];
      }
      for (int64_t d = 0; d < dh; ++d) orows[i * heads + h][d] = static_cast<float>(acc[d] / sum);
    }
  }
}

class CudaAttention : public test::CudaTest {
 protected:
  // Runs `be`'s attention on device copies of the inputs; returns the output on the host.
  void Run(CudaBackend& be, const Inputs& in, const Shape& s, float scale, const HostBuffer& out_b, Tensor& out) {
    DS_MIRROR(dq, be, in.qb);
    const HostBuffer& kb = s.fused ? in.qb : in.kb;
    const HostBuffer& vb = s.fused ? in.qb : in.vb;
    DS_MIRROR(dk, be, kb);
    DS_MIRROR(dv, be, vb);
    DS_MIRROR(dout, be, out_b);
    Tensor dov = dout(out);
    be.attention(dq(in.q), dk(in.k), dv(in.v), scale, dov);
    const Status st = dout.Fetch();
    ASSERT_TRUE(st.ok()) << st.message();
  }

  // A flash kernel configuration under test: its name and a backend that runs it.
  struct Flash {
    std::string config;
    CudaBackend* be;
  };

  // Backends running each configuration of head dim `dh` that this GPU runs (small arenas; the
  // wgmma ones need sm_90: recorded as not run elsewhere), kept in `owned`.
  std::vector<Flash> EveryConfig(int dh, std::vector<std::unique_ptr<CudaBackend>>& owned) {
    std::vector<Flash> out;
    const std::vector<cuda::flash::ConfigInfo> configs = cuda::flash::Configs(dh);
    for (size_t c = 0; c < configs.size(); ++c) {
      const cuda::flash::ConfigInfo& info = configs[c];
      if (const Status runnable = cuda::flash::Runnable(dh, static_cast<int>(c)); !runnable.ok()) {
        ::testing::Test::RecordProperty("flash_not_run_" + info.name, runnable.message());
        continue;
      }
      CudaOptions o = DefaultOptions();
      o.arena_bytes = size_t{256} << 20;
      o.flash_config = info.name;
      owned.push_back(Make(o));
      if (!owned.back()) return {};
      out.push_back({info.name, owned.back().get()});
    }
    return out;
  }

  void CheckFlash(const Shape& s) { CheckFlash(s, {{"default", cuda_.get()}}); }

  // Every backend of `flash` on the same inputs, each held to the rule on its own.
  void CheckFlash(const Shape& s, const std::vector<Flash>& flash) {
    SCOPED_TRACE(Name(s));
    ASSERT_FALSE(flash.empty());
    const Inputs in = MakeInputs(rng_, s);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.dh));
    const int64_t pad = 8;  // o as a slice of a wider buffer: the kernel writes only its view
    const HostBuffer want_b = Poisoned(static_cast<size_t>(s.nq * s.heads * s.dh));
    const HostBuffer base_b = Poisoned(want_b.size());
    Tensor want = want_b.view({s.nq, s.heads, s.dh}), base = base_b.view({s.nq, s.heads, s.dh});
    ref_.attention(in.q, in.k, in.v, scale, want);
    SamePrecisionBaseline(in.q, in.k, in.v, scale, base);
    const double e_base = WorstError(base, want);
    for (const Flash& f : flash) {
      SCOPED_TRACE("flash config " + f.config);
      const HostBuffer got_b = Poisoned(static_cast<size_t>(s.nq * (s.heads * s.dh + pad)));
      Tensor got = Strided(got_b.data(), {s.nq, s.heads, s.dh}, s.heads * s.dh + pad);
      Run(*f.be, in, s, scale, got_b, got);
      const double e_flash = WorstError(got, want);
      EXPECT_LE(e_flash, 2.0 * e_base + 1e-3) << "same-precision baseline error " << e_base;
      EXPECT_TRUE(UntouchedOutside(got_b, got));
      ::testing::Test::RecordProperty(
          "flash_error_" + std::to_string(s.dh) + "_" + std::to_string(s.nk) + "_" + f.config,
          std::to_string(e_flash) + " (baseline " + std::to_string(e_base) + ")");
    }
  }

  // New values for `in` drawn as MakeInputs draws them, written over the old ones: device mirrors
  // of its buffers keep pointing at them.
  void Redraw(Inputs& in, const Shape& s) {
    for (HostBuffer* b : {&in.qb, &in.kb, &in.vb}) {
      if (b->size() == 0) continue;  // k and v in q's buffer (fused)
      const float a = (s.fused || b != &in.vb) ? s.amplitude : 1.0f;
      const HostBuffer fresh = Random(rng_, b->size(), -a, a);
      std::copy_n(fresh.data(), b->size(), b->data());
    }
  }

  // `got`, o of `in`, held to CheckFlash's rule, on every `step`-th query: an output row depends on
  // its own query only, and a float64 reference of every query of a long sequence takes minutes.
  void ExpectMatchesReference(const Inputs& in, const Shape& s, float scale, const Tensor& got, int64_t step = 1) {
    auto every_step = [&](Tensor t) {
      t.shape[0] = (t.shape[0] + step - 1) / step;
      t.strides[0] *= step;
      return t;
    };
    const Tensor q = every_step(in.q), o = every_step(got);
    const HostBuffer want_b(static_cast<size_t>(q.shape[0] * s.heads * s.dh)), base_b(want_b.size());
    Tensor want = want_b.view({q.shape[0], s.heads, s.dh}), base = base_b.view({q.shape[0], s.heads, s.dh});
    ref_.attention(q, in.k, in.v, scale, want);
    SamePrecisionBaseline(q, in.k, in.v, scale, base);
    const double e_base = WorstError(base, want);
    EXPECT_LE(WorstError(o, want), 2.0 * e_base + 1e-3) << "same-precision baseline error " << e_base;
  }

  void CheckF32(CudaBackend& be, const Shape& s) {
    SCOPED_TRACE(Name(s));
    const Inputs in = MakeInputs(rng_, s);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.dh));
    const HostBuffer want_b = Poisoned(static_cast<size_t>(s.nq * s.heads * s.dh)), got_b = Poisoned(want_b.size());
    Tensor want = want_b.view({s.nq, s.heads, s.dh}), got = got_b.view({s.nq, s.heads, s.dh});
    ref_.attention(in.q, in.k, in.v, scale, want);
    Run(be, in, s, scale, got_b, got);
    EXPECT_TRUE(AllClose(got, want, kF32Rtol));
  }

  ReferenceBackend ref_;
  std::mt19937 rng_ = test::TestRng();
};

// Partial query and key tiles, one and several key tiles, self (nq = nk) and cross (text keys),
// fused and separate buffers, every supported head dim.
std::vector<Shape> FlashShapes(int64_t dh) {
  return {Shape{1, 1, 1, dh, false},    Shape{77, 77, 2, dh, true},     Shape{130, 300, 3, dh, false},
          Shape{256, 77, 2, dh, false}, Shape{1000, 1000, 2, dh, true}, Shape{200, 520, 1, dh, true, 3.0f}};
}

// The backend as configured by default (the configuration bench_cuda's attention_flash_bf16 times).
TEST_F(CudaAttention, FlashMatchesReference) {
  for (int64_t dh : {32, 64, 128}) {
    for (const Shape& s : FlashShapes(dh)) CheckFlash(s);
  }
}

// Every configuration the build carries (flash::Candidates), chosen through CudaOptions::flash_config.
TEST_F(CudaAttention, FlashCandidatesMatchReference) {
  for (int dh : {32, 64, 128}) {
    std::vector<std::unique_ptr<CudaBackend>> owned;
    const std::vector<Flash> flash = EveryConfig(dh, owned);
    ASSERT_FALSE(flash.empty());
    for (const Shape& s : FlashShapes(dh)) CheckFlash(s, flash);
  }
}

// The engine's BF16 path on a GPU: q/k/v as column views of one BF16 [N, 3·H·dh] buffer, read in
// place (no conversion pass), o written in BF16; then the cross-attention's mix, a BF16 q with F32
// k/v. Every configuration this GPU runs, held to the float64 baseline of the same bf16 inputs
// with o's own rounding (2⁻⁹ relative) added to FlashMatchesReference's allowance.
TEST_F(CudaAttention, FlashReadsBf16InPlaceAndWritesBf16) {
  std::vector<std::unique_ptr<CudaBackend>> owned;
  const std::vector<Flash> flash = EveryConfig(128, owned);
  ASSERT_FALSE(flash.empty());
  for (auto [nq, nk, heads, cross] :
       {std::tuple<int64_t, int64_t, int64_t, bool>{77, 77, 2, false}, {1000, 1000, 2, false}, {300, 77, 3, true}}) {
    constexpr int64_t dh = 128;
    const int64_t hd = heads * dh, rows = std::max(nq, nk);
    SCOPED_TRACE("nq " + std::to_string(nq) + " nk " + std::to_string(nk) + (cross ? " cross (F32 k/v)" : ""));
    // The fused buffer's values, bf16-representable (the reference reads them as floats).
    const HostBuffer qkv = test::Bf16Rounded(Random(rng_, static_cast<size_t>(rows * 3 * hd)));
    const HostBuffer kf = Random(rng_, static_cast<size_t>(nk * hd)), vf = Random(rng_, static_cast<size_t>(nk * hd));
    const Tensor q = Strided(qkv.data(), {nq, heads, dh}, 3 * hd);
    const Tensor k = cross ? kf.view({nk, heads, dh}) : Strided(qkv.data() + hd, {nk, heads, dh}, 3 * hd);
    const Tensor v = cross ? vf.view({nk, heads, dh}) : Strided(qkv.data() + 2 * hd, {nk, heads, dh}, 3 * hd);
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    const HostBuffer want_b(static_cast<size_t>(nq * hd)), base_b(want_b.size());
    Tensor want = want_b.view({nq, heads, dh}), base = base_b.view({nq, heads, dh});
    ref_.attention(q, k, v, scale, want);
    SamePrecisionBaseline(q, k, v, scale, base);
    const double e_base = WorstError(base, want);
    for (const Flash& f : flash) {
      SCOPED_TRACE("flash config " + f.config);
      CudaBackend& be = *f.be;
      const test::Bf16Matrix dqkv = test::RoundedToBf16(be, qkv, rows, 3 * hd);
      auto dout = be.NewBuffer(DType::kBF16, {nq, hd});
      ASSERT_TRUE(dout.ok());
      const int64_t head_count = heads;  // (a structured binding: not every compiler lets a lambda capture it)
      auto bf16_view = [&](int part, int64_t n) {  // q, k or v columns of the first n fused rows, as heads
        Tensor t = Tensor::View(static_cast<uint16_t*>(dqkv.device.tensor.data) + part * hd, DType::kBF16, {n, hd},
                                Device::kCuda);
        t.strides[0] = dqkv.device.tensor.strides[0];
        return SplitHeads(t, head_count);
      };
      DS_MIRROR(dk, be, kf);
      DS_MIRROR(dv, be, vf);
      const Tensor dq = bf16_view(0, nq);
      const Tensor dkv = cross ? dk(k) : bf16_view(1, nk), dvv = cross ? dv(v) : bf16_view(2, nk);
      Tensor o = SplitHeads(dout->tensor, heads);
      be.attention(dq, dkv, dvv, scale, o);
      const HostBuffer got_b = test::FetchBf16(be, dout->tensor, nq, hd);
      const Status st = be.Synchronize();
      ASSERT_TRUE(st.ok()) << st.message();
      const double e_flash = WorstError(got_b.view({nq, heads, dh}), want);
      EXPECT_LE(e_flash, 2.0 * e_base + 1e-3 + 4e-3) << "same-precision baseline error " << e_base;
    }
  }
}

// A head dim the flash kernel does not take: the naive kernel reads BF16 q/k/v and writes a BF16
// o, f32 inside, so within o's rounding of the reference.
TEST_F(CudaAttention, NaiveKernelReadsAndWritesBf16) {
  constexpr int64_t nq = 70, nk = 90, heads = 2, dh = 48;
  const HostBuffer qf = test::Bf16Rounded(Random(rng_, static_cast<size_t>(nq * heads * dh)));
  const HostBuffer kf = test::Bf16Rounded(Random(rng_, static_cast<size_t>(nk * heads * dh)));
  const HostBuffer vf = test::Bf16Rounded(Random(rng_, static_cast<size_t>(nk * heads * dh)));
  const HostBuffer want_b(qf.size());
  Tensor want = want_b.view({nq, heads, dh});
  const float scale = 0.2f;
  ref_.attention(qf.view({nq, heads, dh}), kf.view({nk, heads, dh}), vf.view({nk, heads, dh}), scale, want);
  constexpr int64_t hd = heads * dh;
  const test::Bf16Matrix dq = test::RoundedToBf16(*cuda_, qf, nq, hd), dk = test::RoundedToBf16(*cuda_, kf, nk, hd),
                         dv = test::RoundedToBf16(*cuda_, vf, nk, hd);
  auto dout = cuda_->NewBuffer(DType::kBF16, {nq, hd});
  ASSERT_TRUE(dout.ok());
  Tensor o = SplitHeads(dout->tensor, heads);
  cuda_->attention(SplitHeads(dq.device.tensor, heads), SplitHeads(dk.device.tensor, heads),
                   SplitHeads(dv.device.tensor, heads), scale, o);
  const HostBuffer got_b = test::FetchBf16(*cuda_, dout->tensor, nq, hd);
  const Status st = cuda_->Synchronize();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(AllClose(got_b.view({nq, heads, dh}), want, 4e-3));
}

TEST_F(CudaAttention, FlashLongSequenceMatchesReference) {
  std::vector<std::unique_ptr<CudaBackend>> owned;
  const std::vector<Flash> flash = EveryConfig(128, owned);
  ASSERT_FALSE(flash.empty());
  CheckFlash({4096, 4096, 2, 128, true}, flash);
}

// When the arena cannot hold every head's bf16 q/k/v, attention converts and runs the heads in
// groups (here 2 + 1 of 3). Each head's work is the same either way, so the result must be bit for
// bit that of the roomy backend, which FlashMatchesReference holds to the reference. The inputs
// live outside the arena (NewBuffer): a 64 MiB arena keeps 32 MiB for cuBLASLt, leaving room for
// two heads of 12 MiB.
TEST_F(CudaAttention, FlashInHeadGroupsWhenTheArenaIsSmall) {
  constexpr int64_t n = 32768, heads = 3, dh = 64;
  auto small = MakeWithArena(kSmallArena);
  ASSERT_TRUE(small);
  const size_t per_head = 3 * n * dh * 2, free_bytes = ArenaFree(*small, kSmallArena);
  ASSERT_LT(free_bytes / per_head, static_cast<size_t>(heads)) << "the arena must not hold every head at once";
  ASSERT_GE(free_bytes / per_head, 1u);
  const HostBuffer host = Random(rng_, static_cast<size_t>(n * heads * dh));
  auto q = cuda_->NewBuffer(DType::kF32, {n, heads, dh});
  auto o_roomy = cuda_->NewBuffer(DType::kF32, {n, heads, dh});
  auto q_small = small->NewBuffer(DType::kF32, {n, heads, dh});
  auto o_small = small->NewBuffer(DType::kF32, {n, heads, dh});
  ASSERT_TRUE(q.ok() && o_roomy.ok() && q_small.ok() && o_small.ok());
  ASSERT_TRUE(cuda_->CopyToBackend(host.view({n, heads, dh}), q->tensor).ok());
  ASSERT_TRUE(small->CopyToBackend(host.view({n, heads, dh}), q_small->tensor).ok());
  const float scale = 0.125f;
  cuda_->attention(q->tensor, q->tensor, q->tensor, scale, o_roomy->tensor);
  small->attention(q_small->tensor, q_small->tensor, q_small->tensor, scale, o_small->tensor);
  const HostBuffer roomy(host.size()), grouped(host.size());
  ASSERT_TRUE(cuda_->CopyToHost(o_roomy->tensor, roomy.view({n, heads, dh})).ok());
  ASSERT_TRUE(small->CopyToHost(o_small->tensor, grouped.view({n, heads, dh})).ok());
  Status st = cuda_->Synchronize();
  ASSERT_TRUE(st.ok()) << st.message();
  st = small->Synchronize();
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_GT(test::Rms(roomy.view({n, heads, dh})), 0.0);
  EXPECT_EQ(std::memcmp(roomy.data(), grouped.data(), host.size() * sizeof(float)), 0);
}

TEST_F(CudaAttention, FlashConfigIsChosenByName) {
  CudaOptions o = DefaultOptions();
  o.arena_bytes = size_t{256} << 20;
  o.flash_config = "no_such_config";
  auto bad = CudaBackend::Create(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find(cuda::flash::Configs(128)[0].name), std::string::npos)
      << bad.status().message();

  const auto choice = cuda::flash::Choice::Named(cuda::flash::Configs(128).back().name);
  ASSERT_TRUE(choice.ok()) << choice.status().message();
  EXPECT_EQ(choice->index(128), static_cast<int>(cuda::flash::Configs(128).size()) - 1);
  // Head dims without a configuration of that name keep their default.
  if (cuda::flash::FindConfig(32, cuda::flash::Configs(128).back().name) < 0) {
    EXPECT_EQ(choice->index(32), cuda::flash::DefaultConfig(32));
  }
  EXPECT_EQ(cuda::flash::Choice().index(64), cuda::flash::DefaultConfig(64));
}

// set_flash_config on a live backend (bench_wan_cuda times one forward per configuration): every
// configuration this GPU runs, switched to in turn on one backend, gives inside a recorded op
// sequence (issued, then captured as a graph and replayed) exactly the bytes of a backend created
// with that configuration, so the graph captured under the previous one is not what replays. Each
// run has new q/k/v in the same device buffer, so a replay that read the values it was captured
// with would fail. A name no head dim has is refused and changes nothing: the graph keeps replaying.
TEST_F(CudaAttention, FlashConfigSwitchedOnALiveBackend) {
  const Shape s{300, 300, 2, 128, true};
  Inputs in = MakeInputs(rng_, s);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.dh));
  const int64_t n = s.nq * s.heads * s.dh;
  const HostBuffer out_b = Poisoned(static_cast<size_t>(n)), poison = Poisoned(static_cast<size_t>(n));
  DS_MIRROR(dqkv, *cuda_, in.qb);
  DS_MIRROR(dout, *cuda_, out_b);
  Tensor out = out_b.view({s.nq, s.heads, s.dh});
  const Tensor out_all = dout(out_b.view({n}));
  const Tensor qkv_host = in.qb.view({static_cast<int64_t>(in.qb.size())}), qkv_all = dqkv(qkv_host);
  const Tensor q = dqkv(in.q), k = dqkv(in.k), v = dqkv(in.v);
  Tensor o = dout(out);
  auto ops = [&]() -> Status {
    cuda_->attention(q, k, v, scale, o);
    return Status::Ok();
  };
  std::unique_ptr<OpRecording> recording;
  std::vector<std::unique_ptr<CudaBackend>> owned;
  for (const Flash& f : EveryConfig(128, owned)) {
    SCOPED_TRACE("flash config " + f.config);
    const Status set = cuda_->set_flash_config(f.config);
    ASSERT_TRUE(set.ok()) << set.message();
    for (int run = 0; run < 3; ++run) {
      SCOPED_TRACE("run " + std::to_string(run));
      Redraw(in, s);
      ASSERT_TRUE(cuda_->Upload(qkv_host, qkv_all).ok());
      const HostBuffer want_b = Poisoned(out_b.size());
      Tensor want = want_b.view({s.nq, s.heads, s.dh});
      Run(*f.be, in, s, scale, want_b, want);
      ASSERT_TRUE(cuda_->Upload(poison.view({n}), out_all).ok());
      const Status ran = cuda_->RunRecorded(recording, ops);
      ASSERT_TRUE(ran.ok()) << ran.message();
      const Status fetched = dout.Fetch();
      ASSERT_TRUE(fetched.ok()) << fetched.message();
      EXPECT_EQ(std::memcmp(out_b.data(), want_b.data(), out_b.size() * sizeof(float)), 0)
          << "not the bytes of a backend created with this configuration";
      ExpectMatchesReference(in, s, scale, out);
      EXPECT_EQ(recording->replays(), run >= 1) << "a new configuration's first run issues the ops";
    }
  }
  if (!recording) return;  // no configuration runs here (EveryConfig recorded why)
  const Status bad = cuda_->set_flash_config("no_such_config");
  EXPECT_EQ(bad.code(), Code::kInvalidArgument) << bad.message();
  ASSERT_TRUE(cuda_->RunRecorded(recording, ops).ok());
  EXPECT_TRUE(recording->replays()) << "a refused name must not discard the graph";
}

// ---- the attention tuner (kernels/cuda/attention/attention_tuning.h) ---------------------------

// A shape whose default kernel takes well over AttentionTuning::kMinMs on any GPU this runs on
// (69 GFLOP).
constexpr Shape kTunedShape{4096, 4096, 8, 128, false};

// Skips the test where a configuration is named for every call (DS_FLASH_CONFIG): nothing is
// chosen then. (One candidate only, as under gpu_check's DS_FLASH_SKIP after a failed kernel, is
// checked, not skipped: the default is kept untimed.)
#define DS_SKIP_IF_NAMED()                                \
  do {                                                    \
    const char* named = std::getenv("DS_FLASH_CONFIG");   \
    if (named != nullptr && *named != '\0') {             \
      GTEST_SKIP() << "DS_FLASH_CONFIG names the kernel"; \
    }                                                     \
  } while (0)

// How the tuner chooses at a shape it can time, on this device: by timing where it has two
// candidates or more, else the default untimed.
cuda::AttentionChoice::How HowATimedShapeIsChosen() {
  return cuda::TimedCandidates(128, cuda::flash::DefaultConfig(128)).size() >= 2 ? cuda::AttentionChoice::How::kTimed
                                                                                 : cuda::AttentionChoice::How::kUntimed;
}

// A file name under the system's temporary directory, removed at scope exit.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& stem)
      : path((std::filesystem::temp_directory_path() / (stem + "_" + std::to_string(getpid()) + ".txt")).string()) {
    std::remove(path.c_str());
  }
  ~TempFile() { std::remove(path.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

// kAll times the shape at its first call and keeps the choice; the output is exactly what a
// backend created with the chosen configuration computes (which names it: never replaced), and a
// second backend reading the same tuning cache takes the same configuration without timing, and
// computes the same bytes.
TEST_F(CudaAttention, TunedChoiceIsKeptAndReadBack) {
  DS_SKIP_IF_NAMED();
  const TempFile cache("ds_attention_tuning");
  const Shape s = kTunedShape;
  const Inputs in = MakeInputs(rng_, s);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.dh));
  const size_t n = static_cast<size_t>(s.nq * s.heads * s.dh);
  auto run = [&](const CudaOptions& o, const HostBuffer& out_b, std::map<std::string, cuda::AttentionChoice>* chosen) {
    auto be = Make(o);
    ASSERT_TRUE(be);
    ASSERT_TRUE(be->set_attention_autotune(cuda::Autotune::kAll).ok());  // whatever DS_ATTENTION_AUTOTUNE says
    Tensor out = out_b.view({s.nq, s.heads, s.dh});
    Run(*be, in, s, scale, out_b, out);
    *chosen = be->attention_choices();
  };
  CudaOptions tuned = DefaultOptions();
  tuned.tuning_cache = cache.path;
  const HostBuffer first = Poisoned(n), second = Poisoned(n), named = Poisoned(n);
  std::map<std::string, cuda::AttentionChoice> a, b, c;
  run(tuned, first, &a);
  ASSERT_EQ(a.size(), 1u);
  const cuda::AttentionChoice& timed = a.begin()->second;
  EXPECT_EQ(a.begin()->first, "hd128/nq4096/nk4096/h8/f32,f32,f32,f32");
  EXPECT_EQ(timed.how, HowATimedShapeIsChosen()) << "under AttentionTuning::kMinMs on this GPU?";
  EXPECT_EQ(cuda::flash::FindConfig(128, timed.name), timed.config);
  if (timed.how == cuda::AttentionChoice::How::kTimed) {
    EXPECT_GT(timed.default_ms, 0.0);
    EXPECT_LE(timed.chosen_ms, timed.default_ms);
  }
  RecordProperty("attention_tuned_" + timed.name,
                 std::to_string(timed.chosen_ms) + " ms (default " + std::to_string(timed.default_ms) + " ms)");

  run(tuned, second, &b);
  ASSERT_EQ(b.size(), 1u);
  if (timed.how == cuda::AttentionChoice::How::kTimed) {
    EXPECT_EQ(b.begin()->second.how, cuda::AttentionChoice::How::kCached);
  }
  EXPECT_EQ(b.begin()->second.name, timed.name);
  EXPECT_EQ(std::memcmp(first.data(), second.data(), n * sizeof(float)), 0)
      << "the cached choice computed other bytes than the timed one";

  CudaOptions by_name = tuned;
  by_name.flash_config = timed.name;
  run(by_name, named, &c);
  EXPECT_TRUE(c.empty()) << "a configuration the user named was replaced by timing";
  EXPECT_EQ(std::memcmp(first.data(), named.data(), n * sizeof(float)), 0)
      << "the tuned call did not compute what its chosen configuration computes";
}

// By default only the shapes a recording's ops meet are timed (they replay every step), and the
// graph captured and replayed afterwards runs the kernel that the timing chose, on each run's new
// q/k/v; kOff times none, kAll every one; the choices are forgotten when the mode or the
// configuration changes.
TEST_F(CudaAttention, TunedShapesFollowTheAutotuneMode) {
  DS_SKIP_IF_NAMED();
  const Shape s = kTunedShape;
  Inputs in = MakeInputs(rng_, s);
  const float scale = 1.0f / std::sqrt(128.0f);
  const size_t n = static_cast<size_t>(s.nq * s.heads * s.dh);
  const HostBuffer out_b = Poisoned(n), poison = Poisoned(n);
  DS_MIRROR(dq, *cuda_, in.qb);
  DS_MIRROR(dk, *cuda_, in.kb);
  DS_MIRROR(dv, *cuda_, in.vb);
  DS_MIRROR(dout, *cuda_, out_b);
  Tensor o = dout(out_b.view({s.nq, s.heads, s.dh}));
  const Tensor o_all = dout(out_b.view({static_cast<int64_t>(n)}));
  auto attend = [&]() -> Status {
    cuda_->attention(dq(in.q), dk(in.k), dv(in.v), scale, o);
    return Status::Ok();
  };
  auto synced = [&] {
    const Status st = cuda_->Synchronize();
    EXPECT_TRUE(st.ok()) << st.message();
  };
  ASSERT_TRUE(cuda_->set_attention_autotune(cuda::Autotune::kRecorded).ok());  // the default, whatever the environment
  ASSERT_TRUE(attend().ok());
  synced();
  EXPECT_TRUE(cuda_->attention_choices().empty()) << "a shape met outside a recording was timed";
  // Run 0 issues the ops (and times the shape), run 1 captures them as a graph, run 2 replays it:
  // each on new q/k/v, from a poisoned o, each the bytes of a backend created with the chosen
  // configuration (which TunedChoiceIsKeptAndReadBack holds the timed call to), and near the
  // reference on a sample of the queries.
  std::unique_ptr<OpRecording> recording;
  std::unique_ptr<CudaBackend> chosen;
  const std::pair<const HostBuffer*, const test::DeviceMirror*> inputs[] = {
      {&in.qb, &dq}, {&in.kb, &dk}, {&in.vb, &dv}};
  for (int run = 0; run < 3; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    Redraw(in, s);
    for (const auto& [host, mirror] : inputs) {
      const Tensor all = host->view({static_cast<int64_t>(host->size())});
      ASSERT_TRUE(cuda_->Upload(all, (*mirror)(all)).ok());
    }
    ASSERT_TRUE(cuda_->Upload(poison.view({static_cast<int64_t>(n)}), o_all).ok());
    ASSERT_TRUE(cuda_->RunRecorded(recording, attend).ok());
    const Status fetched = dout.Fetch();
    ASSERT_TRUE(fetched.ok()) << fetched.message();
    if (run == 0) {
      ASSERT_EQ(cuda_->attention_choices().size(), 1u);
      EXPECT_EQ(cuda_->attention_choices().begin()->second.how, HowATimedShapeIsChosen());
      CudaOptions by_name = DefaultOptions();
      by_name.flash_config = cuda_->attention_choices().begin()->second.name;
      chosen = Make(by_name);
      ASSERT_TRUE(chosen);
    } else {
      EXPECT_TRUE(recording->replays());
    }
    const HostBuffer want_b = Poisoned(n);
    Tensor want = want_b.view({s.nq, s.heads, s.dh});
    Run(*chosen, in, s, scale, want_b, want);
    EXPECT_EQ(std::memcmp(out_b.data(), want_b.data(), n * sizeof(float)), 0)
        << "not the chosen configuration's bytes on this run's inputs";
    ExpectMatchesReference(in, s, scale, out_b.view({s.nq, s.heads, s.dh}), 256);
  }

  ASSERT_TRUE(cuda_->set_attention_autotune(cuda::Autotune::kOff).ok());
  EXPECT_TRUE(cuda_->attention_choices().empty());
  recording.reset();
  ASSERT_TRUE(cuda_->RunRecorded(recording, attend).ok());
  synced();
  EXPECT_TRUE(cuda_->attention_choices().empty());

  ASSERT_TRUE(cuda_->set_attention_autotune(cuda::Autotune::kAll).ok());
  ASSERT_TRUE(attend().ok());
  synced();
  EXPECT_EQ(cuda_->attention_choices().size(), 1u);

  ASSERT_TRUE(cuda_->set_flash_config(cuda::flash::Configs(128)[0].name).ok());
  EXPECT_TRUE(cuda_->attention_choices().empty());
  ASSERT_TRUE(attend().ok());
  synced();
  EXPECT_TRUE(cuda_->attention_choices().empty()) << "a configuration the user named was replaced by timing";
  ASSERT_TRUE(cuda_->set_flash_config("").ok());
}

// The configurations listed as run on a GPU are configurations of this build (a renamed one would
// silently leave the tuner's candidates), and the hd-128 ones not listed are the five built since
// the last GPU run: adding a kernel fails this test until it is counted here (or has run on a GPU
// and is listed). No GPU needed.
TEST(CudaAttentionTuning, KernelsListedAsRunOnAGpuAreConfigurations) {
  int ran = 0, not_yet_128 = 0;
  for (int head_dim : {32, 64, 128}) {
    for (const cuda::flash::ConfigInfo& info : cuda::flash::Configs(head_dim)) {
      const bool listed = cuda::FlashRanOnAGpu(info.name);
      ran += listed ? 1 : 0;
      not_yet_128 += head_dim == 128 && !listed ? 1 : 0;
    }
  }
  // Ten names on twelve configurations: w8x1_k128_s2_qr is built for hd 32 and 64, w4x2_k64_s2_qs
  // for hd 64 and 128.
  EXPECT_EQ(ran, 12);
  EXPECT_EQ(not_yet_128, 5);
}

// DS_FLASH_SKIP (gpu_check leaves out a kernel whose smoke test fails alone) names whole
// configurations: a listed one is not runnable, one whose name merely starts like a listed one is
// not affected. Decided before any device query, so this runs without a GPU too.
TEST(CudaFlashSkip, ListedConfigurationsAreNotRunnable) {
  const std::vector<cuda::flash::ConfigInfo> configs = cuda::flash::Configs(128);
  int wgmma = -1, tma = -1;
  for (int i = 0; i < static_cast<int>(configs.size()); ++i) {
    if (configs[static_cast<size_t>(i)].name == "wgmma2_k128_s2") wgmma = i;
    if (configs[static_cast<size_t>(i)].name == "wgmma2_k128_s2_tma") tma = i;
  }
  ASSERT_GE(wgmma, 0);
  ASSERT_GE(tma, 0);
  // gpu_check runs this binary with its own DS_FLASH_SKIP / DS_FLASH_NO_WGMMA, which the tests
  // after this one must still see.
  const test::ScopedEnv skip("DS_FLASH_SKIP", "no_such,wgmma2_k128_s2"), no_wgmma("DS_FLASH_NO_WGMMA", nullptr);
  const Status skipped = cuda::flash::Runnable(128, wgmma);
  const Status other = cuda::flash::Runnable(128, tma);
  EXPECT_EQ(skipped.code(), Code::kUnsupported);
  EXPECT_NE(skipped.message().find("DS_FLASH_SKIP"), std::string::npos) << skipped.message();
  EXPECT_EQ(other.message().find("DS_FLASH_SKIP"), std::string::npos) << other.message();
}

// The default follows the device: a wgmma configuration exactly where one can run (sm_90, not
// switched off), the mma.sync default elsewhere; every head dim's default is runnable.
TEST_F(CudaAttention, DefaultConfigRunsOnThisDevice) {
  bool wgmma_runs = false;
  const std::vector<cuda::flash::ConfigInfo> configs = cuda::flash::Configs(128);  // (a copy: held, not a temporary)
  for (int i = 0; i < static_cast<int>(configs.size()); ++i) {
    const cuda::flash::ConfigInfo& info = configs[static_cast<size_t>(i)];
    if (!info.wgmma || !cuda::flash::Runnable(128, i).ok()) continue;
    wgmma_runs = true;
    if (info.tma) {
      // setmaxnreg.inc waits for registers the producer gives back: the kernel must start at the
      // 168 per thread its 24 / 240 split assumes, or it hangs.
      const auto r = cuda::flash::Resources(128, i);
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(r->registers, 168) << info.name;
      EXPECT_EQ(r->local_bytes, 0) << info.name;
    }
  }
  for (int hd : {32, 64, 128}) {
    const int d = cuda::flash::DefaultConfig(hd);
    ASSERT_GE(d, 0) << "head dim " << hd;
    EXPECT_TRUE(cuda::flash::Runnable(hd, d).ok()) << "head dim " << hd;
    const bool is_wgmma = cuda::flash::Configs(hd)[static_cast<size_t>(d)].wgmma;
    EXPECT_EQ(is_wgmma, hd == 128 && wgmma_runs)
        << "head dim " << hd << ": default " << cuda::flash::Configs(hd)[static_cast<size_t>(d)].name;
  }
}

TEST_F(CudaAttention, NaiveKernelMatchesReference) {
  CudaOptions o = DefaultOptions();
  o.attention = CudaOptions::Attention::kNaiveF32;
  auto naive = Make(o);
  ASSERT_TRUE(naive);
  for (const Shape& s : {Shape{1, 1, 1, 8, false}, Shape{77, 77, 2, 128, true}, Shape{130, 300, 3, 48, false},
                         Shape{64, 33, 2, 256, true}, Shape{50, 60, 1, 100, false, 3.0f}}) {
    CheckF32(*naive, s);
  }
}

// Head dims the flash kernel does not take run on the naive kernel, at f32 accuracy.
TEST_F(CudaAttention, UnsupportedHeadDimFallsBackToNaive) {
  // 384: the Wan VAE's mid-block attention (one head over the channels).
  for (const Shape& s : {Shape{70, 90, 2, 48, true}, Shape{33, 17, 1, 16, false}, Shape{45, 60, 1, 384, false}}) {
    CheckF32(*cuda_, s);
  }
}

// [n, heads, dh] rows (token-major) as [heads, n, dh] (head-major), or back.
template <class T>
std::vector<T> HeadMajor(const std::vector<T>& x, int n, int heads, int dh, bool back = false) {
  std::vector<T> y(x.size());
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < dh; ++d) {
        const size_t token_major = (static_cast<size_t>(t) * heads + h) * dh + d;
        const size_t head_major = (static_cast<size_t>(h) * n + t) * dh + d;
        if (back) {
          y[token_major] = x[head_major];
        } else {
          y[head_major] = x[token_major];
        }
      }
  return y;
}

// The flash kernel alone on allocations of exactly the tensor sizes, so compute-sanitizer memcheck
// sees any read or write past a tensor (inside the backend's arena it could not), and racecheck
// and synccheck check the shared-memory pipeline; every configuration of every head dim, with
// q/k/v/o token-major ([n, heads, dh], as the models hand them) and head-major ([heads, n, dh]:
// the head stride above the row stride, which the TMA kernel's tensor maps order differently).
// Small: the sanitizers slow kernels down ~100×.
TEST_F(CudaAttention, FlashKernelOnExactAllocations) {
  for (int dh : {32, 64, 128}) {
    // A partial query tile (for 128- and 256-query tiles), 2-7 key tiles (more than the ring has
    // slots), the last partial.
    const int nq = 130, nk = 200, heads = 2;
    std::vector<uint16_t> q(static_cast<size_t>(nq) * heads * dh), k(static_cast<size_t>(nk) * heads * dh), v(k.size());
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto* t : {&q, &k, &v}) {
      for (uint16_t& x : *t) x = cuda::flash::Bf16Bits(dist(rng_));
    }
    // Float64 softmax on the same bf16 inputs: the kernel's only further rounding is P to bf16.
    const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
    const HostBuffer qf(q.size()), kf(k.size()), vf(v.size()), want_b(q.size());
    for (size_t i = 0; i < q.size(); ++i) qf.data()[i] = cuda::flash::Bf16ToFloat(q[i]);
    for (size_t i = 0; i < k.size(); ++i) kf.data()[i] = cuda::flash::Bf16ToFloat(k[i]);
    for (size_t i = 0; i < v.size(); ++i) vf.data()[i] = cuda::flash::Bf16ToFloat(v[i]);
    Tensor want = want_b.view({nq, heads, dh});
    ref_.attention(qf.view({nq, heads, dh}), kf.view({nk, heads, dh}), vf.view({nk, heads, dh}), scale, want);

    const std::vector<cuda::flash::ConfigInfo> configs = cuda::flash::Configs(dh);
    for (bool head_major : {false, true}) {
      const std::vector<uint16_t> hq = head_major ? HeadMajor(q, nq, heads, dh) : q;
      const std::vector<uint16_t> hk = head_major ? HeadMajor(k, nk, heads, dh) : k;
      const std::vector<uint16_t> hv = head_major ? HeadMajor(v, nk, heads, dh) : v;
      for (size_t c = 0; c < configs.size(); ++c) {
        SCOPED_TRACE("dh " + std::to_string(dh) + " config " + configs[c].name +
                     (head_major ? " head-major" : " token-major"));
        if (!cuda::flash::Runnable(dh, static_cast<int>(c)).ok()) continue;  // wgmma off sm_90
        void *dq = nullptr, *dk = nullptr, *dv = nullptr, *dout = nullptr, *dvt = nullptr;
        const size_t out_bytes = static_cast<size_t>(nq) * heads * dh * sizeof(float);
        const size_t vt_bytes = cuda::flash::ScratchBytes(dh, static_cast<int>(c), heads, nk);
        ASSERT_EQ(cudaMalloc(&dq, q.size() * 2), cudaSuccess);
        ASSERT_EQ(cudaMalloc(&dk, k.size() * 2), cudaSuccess);
        ASSERT_EQ(cudaMalloc(&dv, v.size() * 2), cudaSuccess);
        ASSERT_EQ(cudaMalloc(&dout, out_bytes), cudaSuccess);
        if (vt_bytes > 0) {
          ASSERT_EQ(cudaMalloc(&dvt, vt_bytes), cudaSuccess);
        }
        cudaMemcpy(dq, hq.data(), q.size() * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(dk, hk.data(), k.size() * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(dv, hv.data(), v.size() * 2, cudaMemcpyHostToDevice);
        cudaMemset(dout, 0xff, out_bytes);  // NaN

        cuda::flash::Params p;
        p.q = dq;
        p.k = dk;
        p.v = dv;
        p.o = dout;
        if (head_major) {
          p.q_row = p.k_row = p.v_row = p.o_row = dh;
          p.q_head = p.o_head = static_cast<int64_t>(nq) * dh;
          p.k_head = p.v_head = static_cast<int64_t>(nk) * dh;
        } else {
          p.q_row = p.k_row = p.v_row = p.o_row = static_cast<int64_t>(heads) * dh;
          p.q_head = p.k_head = p.v_head = p.o_head = dh;
        }
        p.nq = nq;
        p.nk = nk;
        p.heads = heads;
        p.scale_log2 = scale * cuda::flash::kLog2e;
        p.v_t = dvt;
        const Status st = cuda::flash::Forward(p, dh, nullptr, static_cast<int>(c));
        EXPECT_TRUE(st.ok()) << st.message();
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<float> got(q.size());
        cudaMemcpy(got.data(), dout, out_bytes, cudaMemcpyDeviceToHost);
        for (void* ptr : {dq, dk, dv, dout, dvt}) cudaFree(ptr);
        if (head_major) got = HeadMajor(got, nq, heads, dh, true);
        const HostBuffer got_b(got.size());
        std::copy(got.begin(), got.end(), got_b.data());
        EXPECT_TRUE(AllClose(got_b.view({nq, heads, dh}), want, 1e-2));
      }
    }
  }
}

// MnMajorVReadsEveryKeyAndDim's inputs, [n, 2 heads, dh] bf16 each: query i scores 32 on key i and
// 0 on every other key (q_i = 32·e_i, k_j = e_j; n ≤ dh), head 0's V holds each key's number
// (1 + key), head 1's each dim's (129 + dim), all exact in bf16.
struct OneHotAttention {
  std::vector<uint16_t> q, k, v;
};
OneHotAttention MakeOneHotAttention(int n, int dh) {
  constexpr int kHeads = 2;
  OneHotAttention in;
  in.q.assign(static_cast<size_t>(n) * kHeads * dh, 0);
  in.k = in.q;
  in.v = in.q;
  for (int i = 0; i < n; ++i) {
    for (int h = 0; h < kHeads; ++h) {
      const size_t row = (static_cast<size_t>(i) * kHeads + h) * dh;
      in.q[row + static_cast<size_t>(i)] = cuda::flash::Bf16Bits(32.0f);
      in.k[row + static_cast<size_t>(i)] = cuda::flash::Bf16Bits(1.0f);
      for (int d = 0; d < dh; ++d)
        in.v[row + static_cast<size_t>(d)] = cuda::flash::Bf16Bits(static_cast<float>(h == 0 ? 1 + i : 129 + d));
    }
  }
  return in;
}

// Whether o of those inputs (f32 [n, 2, dh], scale 1) is V's row `key` at each row `key`; if not,
// the wrong values by head, by the key's half of its k16 step and by dim block (where a wrong
// stride or leading byte offset of V's descriptor shows), and the first wrong value of the first
// eight wrong keys decoded: "key 9" (key 9's number) or "dim 6" (dim 6's).
::testing::AssertionResult RowsAreTheirKeysVRows(const std::vector<float>& got, int n, int dh) {
  constexpr int kHeads = 2;
  auto what = [](float x) {
    const float r = std::round(x);
    if (std::abs(x - r) < 1e-2f && r >= 1 && r <= 128) return "key " + std::to_string(static_cast<int>(r) - 1);
    if (std::abs(x - r) < 1e-2f && r >= 129 && r <= 256) return "dim " + std::to_string(static_cast<int>(r) - 129);
    return std::to_string(x);
  };
  int wrong[kHeads][2][2] = {};
  std::string examples;
  int bad = 0, named = 0;
  for (int key = 0; key < n; ++key) {
    bool key_named = false;  // one example per key, so that eight of them span keys
    for (int d = 0; d < dh; ++d) {
      const size_t at = static_cast<size_t>(key) * kHeads * dh + static_cast<size_t>(d);
      bool any = false;
      for (int h = 0; h < kHeads; ++h) {
        const float want = static_cast<float>(h == 0 ? 1 + key : 129 + d);
        if (std::abs(got[at + static_cast<size_t>(h * dh)] - want) <= 1e-2f) continue;  // false for NaN
        ++wrong[h][key % 16 / 8][d / 64];
        any = true;
      }
      bad += any ? 1 : 0;
      if (any && !key_named && named < 8) {
        key_named = true;
        ++named;
        examples += "\n  key " + std::to_string(key) + " dim " + std::to_string(d) + ": head 0 reads " + what(got[at]) +
                    ", head 1 reads " + what(got[at + static_cast<size_t>(dh)]);
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::string table;
  for (int h = 0; h < kHeads; ++h) {
    table += h == 0 ? "\n  key numbers (head 0):" : "\n  dim numbers (head 1):";
    for (int half = 0; half < 2; ++half)
      for (int block = 0; block < 2; ++block) {
        table += std::string(half == 0 ? " keys 0-7" : " keys 8-15") + (block == 0 ? " dims 0-63 " : " dims 64-127 ") +
                 std::to_string(wrong[h][half][block]) + (half == 1 && block == 1 ? "" : ",");
      }
  }
  return ::testing::AssertionFailure() << bad << " of " << n * dh
                                       << " (key, dim) wrong; by key position in its k16 step and dim block, of "
                                       << n / 2 * dh / 2 << " each:" << table
                                       << "\n first wrong dim of the first wrong keys:" << examples;
}

// The V operand of the _vmn configurations, read as stored through an MN-major descriptor
// (hopper_layout.h MnMajorDescriptor): its leading byte offset steps to the next 64 dims, its
// stride byte offset to the next 8 keys. The CPU emulation (test_hopper_layout.cpp) decodes them
// by the same reading of the PTX ISA, so only the hardware can refute it, and random inputs would
// not say which offset is wrong. One-hot scores do (MakeOneHotAttention): P is one-hot (other keys
// weigh e⁻³² ≈ 10⁻¹⁴), so o's row i is V's row i; a wrong leading byte offset shows as wrong values
// in dims 64-127 only, a wrong stride byte offset as other keys' values for keys 8-15 of each k16
// step.
TEST_F(CudaAttention, MnMajorVReadsEveryKeyAndDim) {
  constexpr int n = 128, heads = 2, dh = 128;  // keys 0-127: every k16 step of the first key tile
  const OneHotAttention in = MakeOneHotAttention(n, dh);
  const std::vector<cuda::flash::ConfigInfo> configs = cuda::flash::Configs(dh);
  int mn_major = 0;
  for (size_t c = 0; c < configs.size(); ++c) {
    if (configs[c].name.find("_vmn") == std::string::npos) continue;
    ++mn_major;
    SCOPED_TRACE("config " + configs[c].name);
    if (const Status runnable = cuda::flash::Runnable(dh, static_cast<int>(c)); !runnable.ok()) {
      RecordProperty("flash_not_run_" + configs[c].name, runnable.message());  // wgmma off sm_90
      continue;
    }
    void *dq = nullptr, *dk = nullptr, *dv = nullptr, *dout = nullptr, *dvt = nullptr;
    const size_t in_bytes = in.q.size() * 2, out_bytes = in.q.size() * sizeof(float);
    const size_t vt_bytes = cuda::flash::ScratchBytes(dh, static_cast<int>(c), heads, n);
    ASSERT_EQ(cudaMalloc(&dq, in_bytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dk, in_bytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dv, in_bytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dout, out_bytes), cudaSuccess);
    if (vt_bytes > 0) {
      ASSERT_EQ(cudaMalloc(&dvt, vt_bytes), cudaSuccess);
    }
    cudaMemcpy(dq, in.q.data(), in_bytes, cudaMemcpyHostToDevice);
    cudaMemcpy(dk, in.k.data(), in_bytes, cudaMemcpyHostToDevice);
    cudaMemcpy(dv, in.v.data(), in_bytes, cudaMemcpyHostToDevice);
    cudaMemset(dout, 0xff, out_bytes);  // NaN
    cuda::flash::Params p;
    p.q = dq;
    p.k = dk;
    p.v = dv;
    p.o = dout;
    p.q_row = p.k_row = p.v_row = p.o_row = heads * dh;
    p.q_head = p.k_head = p.v_head = p.o_head = dh;
    p.nq = p.nk = n;
    p.heads = heads;
    p.scale_log2 = cuda::flash::kLog2e;  // scale 1
    p.v_t = dvt;
    const Status st = cuda::flash::Forward(p, dh, nullptr, static_cast<int>(c));
    EXPECT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> got(in.q.size());
    cudaMemcpy(got.data(), dout, out_bytes, cudaMemcpyDeviceToHost);
    for (void* ptr : {dq, dk, dv, dout, dvt}) cudaFree(ptr);
    EXPECT_TRUE(RowsAreTheirKeysVRows(got, n, dh));
  }
  EXPECT_GT(mn_major, 0) << "no _vmn configuration: renamed?";
}

}  // namespace
}  // namespace ds
