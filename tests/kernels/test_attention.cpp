// CpuBackend attention vs the reference backend, vs an explicit float64 softmax(q·kᵀ·scale)·v, and
// joint [video ‖ text] attention vs the explicit concatenation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/reference_backend.h"
#include "tests/kernels/kernel_test_util.h"

namespace ds {
namespace {

using test::AllClose;
using test::Poisoned;
using test::Random;
using test::Strided;
using test::UntouchedOutside;

constexpr double kRtol = 2e-5;

struct Shape {
  int64_t nq, nk, heads, dh;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << "nq " << s.nq << " nk " << s.nk << " heads " << s.heads << " dh " << s.dh;
}

// q/k/v as [N, H, dh] views of one fused [max(nq, nk), 3, H, dh] buffer, or of separate buffers.
struct Inputs {
  HostBuffer q_b, k_b, v_b;
  Tensor q, k, v;
};

Inputs MakeInputs(std::mt19937& rng, const Shape& s, bool fused, float lo = -1.0f,
                  float hi = 1.0f) {
  Inputs in;
  const int64_t hd = s.heads * s.dh;
  if (fused) {
    in.q_b = Random(rng, std::max(s.nq, s.nk) * 3 * hd, lo, hi);
    in.q = Strided(in.q_b.data(), {s.nq, s.heads, s.dh}, 3 * hd);
    in.k = Strided(in.q_b.data() + hd, {s.nk, s.heads, s.dh}, 3 * hd);
    in.v = Strided(in.q_b.data() + 2 * hd, {s.nk, s.heads, s.dh}, 3 * hd);
  } else {
    in.q_b = Random(rng, s.nq * hd, lo, hi);
    in.k_b = Random(rng, s.nk * hd, lo, hi);
    in.v_b = Random(rng, s.nk * hd, -1.0f, 1.0f);
    in.q = in.q_b.view({s.nq, s.heads, s.dh});
    in.k = in.k_b.view({s.nk, s.heads, s.dh});
    in.v = in.v_b.view({s.nk, s.heads, s.dh});
  }
  return in;
}

// softmax(q·kᵀ·scale)·v with the full score matrix, in float64: independent of both backends.
std::vector<double> ExplicitAttention(const Tensor& q, const Tensor& k, const Tensor& v,
                                      double scale) {
  const int64_t nq = q.shape[0], nk = k.shape[0], heads = q.shape[1], dh = q.shape[2];
  Rows qr(q), kr(k), vr(v);
  std::vector<double> out(static_cast<size_t>(nq * heads * dh));
  std::vector<double> s(static_cast<size_t>(nq * nk));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < nq; ++i) {
      for (int64_t j = 0; j < nk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < dh; ++d) dot += double{qr[i * heads + h][d]} * kr[j * heads + h][d];
        s[i * nk + j] = dot * scale;
      }
      const double max = *std::max_element(&s[i * nk], &s[i * nk] + nk);
      double sum = 0;
      for (int64_t j = 0; j < nk; ++j) sum += s[i * nk + j] = std::exp(s[i * nk + j] - max);
      for (int64_t d = 0; d < dh; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < nk; ++j) acc += s[i * nk + j] * vr[j * heads + h][d];
        out[(i * heads + h) * dh + d] = acc / sum;
      }
    }
  }
  return out;
}

HostBuffer ToFloat(const std::vector<double>& v) {
  HostBuffer b(v.size());
  std::transform(v.begin(), v.end(), b.data(), [](double x) { return static_cast<float>(x); });
  return b;
}

class Attention : public ::testing::TestWithParam<Shape> {
 protected:
  // o as a slice of a wider buffer (token stride H·dh + 8) to check the output stride too.
  void Run(const Inputs& in, float scale, double rtol) {
    const Shape s = GetParam();
    const int64_t stride = s.heads * s.dh + 8;
    const HostBuffer got_b = Poisoned(s.nq * stride), want_b = Poisoned(s.nq * s.heads * s.dh);
    Tensor got = Strided(got_b.data(), {s.nq, s.heads, s.dh}, stride);
    Tensor want = want_b.view({s.nq, s.heads, s.dh});
    cpu_.attention(in.q, in.k, in.v, scale, got);
    ref_.attention(in.q, in.k, in.v, scale, want);
    EXPECT_TRUE(AllClose(got, want, rtol)) << "vs reference";
    EXPECT_TRUE(UntouchedOutside(got_b, got));
    const HostBuffer exact = ToFloat(ExplicitAttention(in.q, in.k, in.v, scale));
    EXPECT_TRUE(AllClose(got, exact.view({s.nq, s.heads, s.dh}), rtol)) << "vs explicit float64";
  }

  ReferenceBackend ref_;
  CpuBackend cpu_{2};
  std::mt19937 rng_ = test::TestRng();
};

TEST_P(Attention, SeparateBuffers) {
  const Shape s = GetParam();
  Run(MakeInputs(rng_, s, false), 1.0f / std::sqrt(static_cast<float>(s.dh)), kRtol);
}

TEST_P(Attention, FusedQkvBuffer) {
  const Shape s = GetParam();
  Run(MakeInputs(rng_, s, true), 1.0f / std::sqrt(static_cast<float>(s.dh)), kRtol);
}

// Logits of ±100s overflow exp() unless the max is subtracted; the online max must be exact.
TEST_P(Attention, LargeLogits) {
  Run(MakeInputs(rng_, GetParam(), false, -4.0f, 4.0f), 1.0f, 1e-4);
}

TEST_P(Attention, OneAndTwoThreadsAgree) {
  const Shape s = GetParam();
  const Inputs in = MakeInputs(rng_, s, false);
  HostBuffer out[2] = {Poisoned(s.nq * s.heads * s.dh), Poisoned(s.nq * s.heads * s.dh)};
  for (const int threads : {1, 2}) {
    cpu_.set_threads(threads);
    Tensor o = out[threads - 1].view({s.nq, s.heads, s.dh});
    cpu_.attention(in.q, in.k, in.v, 0.125f, o);
  }
  EXPECT_TRUE(
      AllClose(out[1].view({s.nq, s.heads, s.dh}), out[0].view({s.nq, s.heads, s.dh}), kRtol));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Attention,
                         ::testing::Values(Shape{1, 1, 1, 8}, Shape{7, 7, 2, 16},
                                           Shape{1, 9, 2, 32}, Shape{129, 129, 3, 32},
                                           Shape{144, 144, 6, 32}, Shape{65, 300, 2, 64},
                                           Shape{300, 65, 2, 64}, Shape{33, 47, 2, 24},
                                           Shape{257, 513, 1, 128}));

// MMDiT joint attention: video and text have their own qkv projections writing into one
// [Nv + Nt, 3, H, dh] buffer, and one attention runs over [video ‖ text]. Compared with the
// explicit formulation: separate projections, copies concatenated into contiguous q/k/v, reference
// attention.
class JointAttention : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {
 protected:
  ReferenceBackend ref_;
  CpuBackend cpu_{2};
  std::mt19937 rng_ = test::TestRng();
};

TEST_P(JointAttention, MatchesExplicitConcatenation) {
  const auto [nv, nt] = GetParam();
  const int64_t n = nv + nt, heads = 2, dh = 16, hd = heads * dh, d_model = 24;
  const HostBuffer xv = Random(rng_, nv * d_model), xt = Random(rng_, nt * d_model);
  const HostBuffer wv = Random(rng_, 3 * hd * d_model), wt = Random(rng_, 3 * hd * d_model);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));

  // Fused: both streams' projections land in one buffer; attention reads it in place.
  const HostBuffer qkv = Poisoned(n * 3 * hd);
  Tensor video_rows = qkv.view({nv, 3 * hd});
  Tensor text_rows = Strided(qkv.data() + nv * 3 * hd, {nt, 3 * hd}, 3 * hd);
  cpu_.linear(xv.view({nv, d_model}), wv.view({3 * hd, d_model}), nullptr, video_rows);
  cpu_.linear(xt.view({nt, d_model}), wt.view({3 * hd, d_model}), nullptr, text_rows);
  const auto slice = [&](int part, int64_t first, int64_t rows) {
    return Strided(qkv.data() + first * 3 * hd + part * hd, {rows, heads, dh}, 3 * hd);
  };
  const HostBuffer joint_b = Poisoned(n * hd), video_only_b = Poisoned(nv * hd);
  Tensor joint = joint_b.view({n, heads, dh}), video_only = video_only_b.view({nv, heads, dh});
  cpu_.attention(slice(0, 0, n), slice(1, 0, n), slice(2, 0, n), scale, joint);
  // Video queries over both streams' keys (Nq ≠ Nk), as a cross-stream consumer would ask.
  cpu_.attention(slice(0, 0, nv), slice(1, 0, n), slice(2, 0, n), scale, video_only);

  // Explicit: separate projections, then concatenated copies.
  const HostBuffer pv = Poisoned(nv * 3 * hd), pt = Poisoned(nt * 3 * hd);
  Tensor pv_t = pv.view({nv, 3 * hd}), pt_t = pt.view({nt, 3 * hd});
  ref_.linear(xv.view({nv, d_model}), wv.view({3 * hd, d_model}), nullptr, pv_t);
  ref_.linear(xt.view({nt, d_model}), wt.view({3 * hd, d_model}), nullptr, pt_t);
  HostBuffer cat[3] = {Poisoned(n * hd), Poisoned(n * hd), Poisoned(n * hd)};
  for (int part = 0; part < 3; ++part) {
    for (int64_t i = 0; i < n; ++i) {
      const float* src = i < nv ? pv.data() + i * 3 * hd : pt.data() + (i - nv) * 3 * hd;
      std::copy_n(src + part * hd, hd, cat[part].data() + i * hd);
    }
  }
  const HostBuffer want_b = Poisoned(n * hd);
  Tensor want = want_b.view({n, heads, dh});
  ref_.attention(cat[0].view({n, heads, dh}), cat[1].view({n, heads, dh}),
                 cat[2].view({n, heads, dh}), scale, want);
  EXPECT_TRUE(AllClose(joint, want, kRtol));
  EXPECT_TRUE(AllClose(video_only, want_b.view({nv, heads, dh}), kRtol));
}

INSTANTIATE_TEST_SUITE_P(Streams, JointAttention,
                         ::testing::Values(std::tuple{1, 1}, std::tuple{64, 7},
                                           std::tuple{130, 77}));

}  // namespace
}  // namespace ds
