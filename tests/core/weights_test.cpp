#include "core/weights.h"

#include <gtest/gtest.h>

#include "tests/core/test_files.h"

namespace ds {
namespace {

using test::HasSubstr;
using test::ToBytes;

class WeightsTest : public test::TempDirTest {
 protected:
  void SetUp() override {
    test::TempDirTest::SetUp();
    path_ = Path("model.safetensors");
    // 1.0, -2.0, 0.5, 3.0, -0.25, 65504 as F16 bit patterns; the same 1, -2 as BF16.
    test::WriteSafetensors(
        path_, {{"w16", "F16", {2, 3}, ToBytes(std::vector<uint16_t>{0x3C00, 0xC000, 0x3800, 0x4200, 0xB400, 0x7BFF})},
                {"b16", "BF16", {2}, ToBytes(std::vector<uint16_t>{0x3F80, 0xC000})},
                {"f32", "F32", {}, ToBytes(std::vector<float>{0.125f})},
                {"steps", "I64", {1}, ToBytes(std::vector<int64_t>{5})}});
  }
  Weights Open() {
    auto w = Weights::Open(path_);
    EXPECT_TRUE(w.ok()) << w.status().message();
    return std::move(w).value();
  }
  std::string path_;
};

TEST_F(WeightsTest, ConvertsToFloat32Views) {
  Weights w = Open();
  auto t = w.Get("w16", {2, 3});
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->dtype, DType::kF32);
  EXPECT_EQ(t->shape_string(), "[2, 3]");
  EXPECT_TRUE(t->contiguous());
  EXPECT_EQ(t->strides[0], 12);
  const std::vector<float> want = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 65504.0f};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(t->f32()[i], want[i]) << i;

  auto b = w.Get("b16", {2});
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->f32()[0], 1.0f);
  EXPECT_EQ(b->f32()[1], -2.0f);

  auto s = w.Get("f32", {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->ndim, 0);
  EXPECT_EQ(s->f32()[0], 0.125f);
}

TEST_F(WeightsTest, GetStoredViewsHalfTypesAndConvertsTheRest) {
  Weights w = Open();
  auto t = w.GetStored("w16", {2, 3});
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->dtype, DType::kF16);
  EXPECT_TRUE(t->contiguous());
  EXPECT_EQ(t->strides[0], 6);
  EXPECT_EQ(t->strides[1], 2);
  EXPECT_EQ(t->nbytes(), 12u);
  std::vector<float> widened(6);
  WidenToF32(t->data, t->dtype, widened.data(), 0, 6);
  EXPECT_EQ(widened, (std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 65504.0f}));
  auto b = w.GetStored("b16", {2});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->dtype, DType::kBF16);
  auto f = w.GetStored("f32", {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->dtype, DType::kF32);
  EXPECT_EQ(f->f32()[0], 0.125f);
  // Shape errors are Get's, naming the tensor; viewed tensors count as used.
  auto bad = w.GetStored("w16", {3, 2});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(HasSubstr(bad.status().message(), "w16"));
  EXPECT_EQ(w.Unused(), (std::vector<std::string>{"steps"}));
}

// A weight changed in Get's copy and narrowed keeps the change at its stored width: GetStored
// returns the narrowed copy, Get widens it again (not the file's values), a second Narrow returns
// the first copy. Bit patterns worked out by hand: BF16 1.5 = 0x3FC0, 2.75 = 0x4030.
TEST_F(WeightsTest, NarrowKeepsAChangedWeightAtItsWidth) {
  Weights w = Open();
  auto f = w.Get("b16", {2});
  ASSERT_TRUE(f.ok());
  f->f32()[0] += 0.5f;  // 1 → 1.5
  f->f32()[1] = 2.75f;  // -2 → 2.75
  auto n = w.Narrow("b16", DType::kBF16);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n->dtype, DType::kBF16);
  const auto* bits = static_cast<const uint16_t*>(n->data);
  EXPECT_EQ(bits[0], 0x3FC0);
  EXPECT_EQ(bits[1], 0x4030);
  auto stored = w.GetStored("b16", {2});
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->data, n->data);
  auto again = w.Get("b16", {2});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->f32()[0], 1.5f);
  EXPECT_EQ(again->f32()[1], 2.75f);
  auto second = w.Narrow("b16", DType::kBF16);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->data, n->data) << "views of the first copy must stay valid";
  EXPECT_FALSE(w.Narrow("w16", DType::kF16).ok()) << "never fetched with Get: nothing to narrow";
}

TEST_F(WeightsTest, RepeatedGetSharesStorageThatSurvivesMoves) {
  Weights w = Open();
  auto first = w.Get("w16", {2, 3});
  ASSERT_TRUE(first.ok());
  Weights moved = std::move(w);
  auto again = moved.Get("w16", {2, 3});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->data, again->data);
  EXPECT_EQ(again->f32()[5], 65504.0f);
}

TEST_F(WeightsTest, ShapeMismatchNamesFileTensorAndBothShapes) {
  Weights w = Open();
  auto t = w.Get("w16", {3, 2});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kModel);
  EXPECT_TRUE(HasSubstr(t.status().message(), path_ + ": tensor 'w16' has shape [2, 3] but the model expects [3, 2]"));
}

TEST_F(WeightsTest, MissingTensorIsNamed) {
  Weights w = Open();
  EXPECT_FALSE(w.Has("dit.final.weight"));
  EXPECT_TRUE(w.Has("w16"));
  auto t = w.Get("dit.final.weight", {8, 192});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kModel);
  EXPECT_TRUE(HasSubstr(t.status().message(), "missing tensor 'dit.final.weight' (expected shape [8, 192])"));
  EXPECT_TRUE(HasSubstr(t.status().message(), path_));
}

TEST_F(WeightsTest, NonFloatTensorIsUnsupported) {
  Weights w = Open();
  auto t = w.Get("steps", {1});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kUnsupported);
  EXPECT_TRUE(HasSubstr(t.status().message(), "'steps' has dtype I64"));
}

TEST_F(WeightsTest, ReportsShapesAndUnusedTensors) {
  Weights w = Open();
  auto shape = w.Shape("w16");
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ(*shape, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(w.Shape("nope").ok());
  EXPECT_EQ(w.Unused(), (std::vector<std::string>{"b16", "f32", "steps", "w16"}));
  ASSERT_TRUE(w.Get("w16", {2, 3}).ok());
  ASSERT_FALSE(w.Get("b16", {3}).ok());  // a failed Get does not count as a use
  EXPECT_EQ(w.Unused(), (std::vector<std::string>{"b16", "f32", "steps"}));
}

}  // namespace
}  // namespace ds
