#include "core/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/core/test_files.h"

namespace ds {
namespace {

using test::Bytes;
using test::HasSubstr;
using test::TensorSpec;
using test::ToBytes;

class SafetensorsTest : public test::TempDirTest {
 protected:
  // Opens the file and expects it to fail with `code`; returns the message.
  std::string OpenError(const std::string& path, Code code) {
    auto f = SafetensorsFile::Open(path);
    EXPECT_FALSE(f.ok());
    if (f.ok()) return {};
    EXPECT_EQ(f.status().code(), code) << f.status().message();
    EXPECT_TRUE(HasSubstr(f.status().message(), path));
    return f.status().message();
  }

  std::string BadHeader(std::string_view header, const Bytes& data = Bytes(64, 0)) {
    std::string path = Path("bad.safetensors");
    test::WriteRaw(path, header, data);
    return OpenError(path, Code::kModel);
  }

  std::vector<float> ToF32(const SafetensorsEntry& e) {
    std::vector<float> out(static_cast<size_t>(e.numel()), std::nanf(""));
    Status s = ConvertToF32(e, out.data());
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
};

TEST_F(SafetensorsTest, ReadsF32Values) {
  std::vector<float> values = {1.5f, -2.25f, 3.0e-5f, 1024.0f, -0.0f, 7.0f};
  std::string path = Path("f32.safetensors");
  test::WriteSafetensors(path, {{"w", "F32", {2, 3}, ToBytes(values)}});
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const SafetensorsEntry* e = (*f)->find("w");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, StDType::kF32);
  EXPECT_EQ(e->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(e->nbytes, 24u);
  EXPECT_EQ(e->name, "w");
  EXPECT_EQ(e->file, path);
  std::vector<float> got = ToF32(*e);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(std::memcmp(&got[i], &values[i], 4), 0) << i;  // bit-exact, -0.0 included
  }
  EXPECT_EQ((*f)->find("absent"), nullptr);
}

TEST_F(SafetensorsTest, ConvertsF16BitPatterns) {
  // Expected values worked out by hand from sign · 2^(e−15) · 1.mant (or 2^-24 · mant).
  std::vector<uint16_t> bits = {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x03FF, 0x8000, 0x7C00};
  std::vector<float> want = {1.0f,
                             -2.0f,
                             0.333251953125f,
                             65504.0f,
                             5.9604644775390625e-8f,
                             6.0975551605224609e-5f,
                             -0.0f,
                             std::numeric_limits<float>::infinity()};
  std::string path = Path("f16.safetensors");
  test::WriteSafetensors(path, {{"h", "F16", {8}, ToBytes(bits)}});
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const SafetensorsEntry* e = (*f)->find("h");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, StDType::kF16);
  std::vector<float> got = ToF32(*e);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "bits 0x" << std::hex << bits[i];
    EXPECT_EQ(std::signbit(got[i]), std::signbit(want[i])) << i;
  }
}

TEST_F(SafetensorsTest, ConvertsBF16BitPatterns) {
  std::vector<uint16_t> bits = {0x3F80, 0xC040, 0x4049, 0x0080, 0x7F7F, 0xBF00};
  std::vector<float> want = {1.0f, -3.0f, 3.140625f, 1.17549435e-38f, 3.38953139e38f, -0.5f};
  std::string path = Path("bf16.safetensors");
  test::WriteSafetensors(path, {{"b", "BF16", {2, 3}, ToBytes(bits)}});
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  std::vector<float> got = ToF32(*(*f)->find("b"));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << i;
}

TEST_F(SafetensorsTest, ReadsMetadataAndSortedNames) {
  std::string path = Path("meta.safetensors");
  test::WriteSafetensors(path,
                         {{"z", "F32", {1}, ToBytes(std::vector<float>{1})},
                          {"a", "F32", {1}, ToBytes(std::vector<float>{2})}},
                         {{"format", "pt"}, {"step", "1200"}});
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->names(), (std::vector<std::string>{"a", "z"}));
  ASSERT_EQ((*f)->metadata().size(), 2u);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ((*f)->metadata().at("step"), "1200");
}

TEST_F(SafetensorsTest, ReadsScalarAndEmptyTensors) {
  std::string path = Path("scalar.safetensors");
  // The empty tensor sits at the same offset as the scalar: zero bytes cannot overlap anything.
  test::WriteRaw(path,
                 R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                 R"("e":{"dtype":"BF16","shape":[0,3],"data_offsets":[0,0]}})",
                 ToBytes(std::vector<float>{-7.5f}));
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const SafetensorsEntry* s = (*f)->find("s");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->numel(), 1);
  EXPECT_EQ(ToF32(*s), std::vector<float>{-7.5f});
  const SafetensorsEntry* e = (*f)->find("e");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->numel(), 0);
  EXPECT_EQ(e->nbytes, 0u);
}

TEST_F(SafetensorsTest, NonFloatDTypesAreRawOnly) {
  std::string path = Path("i64.safetensors");
  test::WriteSafetensors(path, {{"step", "I64", {1}, ToBytes(std::vector<int64_t>{1200})}});
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const SafetensorsEntry* e = (*f)->find("step");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, StDType::kI64);
  int64_t raw = 0;
  std::memcpy(&raw, e->data, 8);
  EXPECT_EQ(raw, 1200);
  float out = 0;
  Status s = ConvertToF32(*e, &out);
  EXPECT_EQ(s.code(), Code::kUnsupported);
  EXPECT_TRUE(HasSubstr(s.message(), path));
  EXPECT_TRUE(HasSubstr(s.message(), "'step'"));
  EXPECT_TRUE(HasSubstr(s.message(), "I64"));
}

TEST_F(SafetensorsTest, RejectsMissingFile) { OpenError(Path("nope.safetensors"), Code::kIo); }

TEST_F(SafetensorsTest, RejectsFileShorterThanLengthField) {
  std::string path = Path("short.safetensors");
  test::WriteFile(path, "abcde");
  EXPECT_TRUE(HasSubstr(OpenError(path, Code::kModel), "5 bytes"));
}

TEST_F(SafetensorsTest, RejectsHugeHeaderLength) {
  std::string path = Path("huge.safetensors");
  test::WriteRaw(path, "{}", {}, uint64_t{1} << 40);
  std::string m = OpenError(path, Code::kModel);
  EXPECT_TRUE(HasSubstr(m, "1099511627776"));
  EXPECT_TRUE(HasSubstr(m, "104857600"));
}

TEST_F(SafetensorsTest, RejectsHeaderLengthBeyondFile) {
  std::string path = Path("beyond.safetensors");
  test::WriteRaw(path, "{}", Bytes(18, ' '), 100);
  std::string m = OpenError(path, Code::kModel);
  EXPECT_TRUE(HasSubstr(m, "header length 100"));
  EXPECT_TRUE(HasSubstr(m, "20 bytes"));
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotJson) {
  std::string m = BadHeader("{\"a\": nope}");
  EXPECT_TRUE(HasSubstr(m, "not valid JSON"));
  EXPECT_TRUE(HasSubstr(m, "line 1, column"));
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotAnObject) {
  EXPECT_TRUE(HasSubstr(BadHeader("[1, 2]"), "must be a JSON object, got array"));
}

TEST_F(SafetensorsTest, RejectsEntryThatIsNotAnObject) {
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w": 3})"), "tensor 'w' must be an object, got 3"));
}

TEST_F(SafetensorsTest, RejectsMissingFields) {
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"shape":[1],"data_offsets":[0,4]}})"),
                        "tensor 'w' has no 'dtype'"));
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})"),
                        "tensor 'w' has no 'shape'"));
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F32","shape":[1]}})"),
                        "tensor 'w' has no 'data_offsets'"));
}

TEST_F(SafetensorsTest, RejectsMistypedFields) {
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})"),
                        "'dtype' must be a string, got 4"));
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})"),
                        "'shape' must be an array, got \"1\""));
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})"),
                        "got 1.5"));
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})"),
                        "'data_offsets' must be [begin, end], got [0,4,8]"));
}

TEST_F(SafetensorsTest, RejectsUnknownDType) {
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})"),
                        "tensor 'w' has unknown dtype \"F17\""));
}

TEST_F(SafetensorsTest, RejectsNegativeDimension) {
  std::string m = BadHeader(R"({"w":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,4]}})");
  EXPECT_TRUE(HasSubstr(m, "tensor 'w'"));
  EXPECT_TRUE(HasSubstr(m, "non-negative"));
  EXPECT_TRUE(HasSubstr(m, "[-1,2]"));
}

TEST_F(SafetensorsTest, RejectsTooManyDimensions) {
  std::string path = Path("6d.safetensors");
  test::WriteRaw(path, R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1],"data_offsets":[0,4]}})",
                 Bytes(4, 0));
  EXPECT_TRUE(HasSubstr(OpenError(path, Code::kUnsupported), "tensor 'w' has 6 dims"));
}

TEST_F(SafetensorsTest, RejectsByteCountMismatch) {
  std::string m = BadHeader(R"({"dit.x_embed.weight":{"dtype":"F32","shape":[2,3],)"
                            R"("data_offsets":[0,20]}})");
  EXPECT_TRUE(HasSubstr(m,
                        "tensor 'dit.x_embed.weight': shape [2, 3] × F32 needs 24 bytes but "
                        "data_offsets span 20"));
}

TEST_F(SafetensorsTest, RejectsShapeWhoseSizeOverflows) {
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],)"
                                  R"("data_offsets":[0,4]}})"),
                        "overflows"));
}

TEST_F(SafetensorsTest, RejectsRangeBeyondFile) {
  std::string m =
      BadHeader(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", Bytes(16, 0));
  EXPECT_TRUE(HasSubstr(m, "tensor 'w': data_offsets [0, 24] run past the 16-byte data section"));
}

TEST_F(SafetensorsTest, RejectsBeginAfterEnd) {
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})"),
                        "tensor 'w': data_offsets [8, 0] begin after end"));
}

TEST_F(SafetensorsTest, RejectsOverlappingRanges) {
  std::string m = BadHeader(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                            R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})");
  EXPECT_TRUE(HasSubstr(m, "tensors 'a' [0, 16) and 'b' [8, 24) overlap"));
}

TEST_F(SafetensorsTest, RejectsNonStringMetadata) {
  EXPECT_TRUE(HasSubstr(BadHeader(R"({"__metadata__":{"step":3}})"),
                        "'__metadata__' entry 'step' must be a string, got 3"));
}

TEST_F(SafetensorsTest, DeeplyNestedHeaderFailsCleanly) {
  // A hostile header must produce an error, not exhaust the stack while describing it.
  std::string nested = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(HasSubstr(
      BadHeader(R"({"w":{"dtype":"F32","shape":)" + nested + R"(,"data_offsets":[0,4]}})"),
      "tensor 'w'"));
}

class CheckpointTest : public test::TempDirTest {
 protected:
  void WriteShard(const std::string& name, const std::vector<std::string>& tensors) {
    std::vector<TensorSpec> specs;
    float v = 1;
    for (const std::string& t : tensors)
      specs.push_back({t, "F32", {1}, ToBytes(std::vector<float>{v++})});
    test::WriteSafetensors(Path(name), specs);
  }
  void WriteIndex(const std::string& name, const nlohmann::json& weight_map) {
    test::WriteFile(
        Path(name),
        nlohmann::json{{"metadata", {{"total_size", 12}}}, {"weight_map", weight_map}}.dump(2));
  }
  void WriteShardedModel() {
    WriteShard("model-00001-of-00002.safetensors", {"a", "b"});
    WriteShard("model-00002-of-00002.safetensors", {"c"});
    WriteIndex("model.safetensors.index.json", {{"a", "model-00001-of-00002.safetensors"},
                                                {"b", "model-00001-of-00002.safetensors"},
                                                {"c", "model-00002-of-00002.safetensors"}});
  }
  std::string OpenError(const std::string& path, Code code) {
    auto c = Checkpoint::Open(path);
    EXPECT_FALSE(c.ok());
    if (c.ok()) return {};
    EXPECT_EQ(c.status().code(), code) << c.status().message();
    return c.status().message();
  }
};

TEST_F(CheckpointTest, OpensSingleFileDirectly) {
  WriteShard("model.safetensors", {"x", "y"});
  auto c = Checkpoint::Open(Path("model.safetensors"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_NE((*c)->find("y"), nullptr);
  EXPECT_EQ((*c)->shards().size(), 1u);
}

TEST_F(CheckpointTest, OpensFolderWithOneFile) {
  WriteShard("model.safetensors", {"x"});
  auto c = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->path(), Path("model.safetensors"));
  EXPECT_NE((*c)->find("x"), nullptr);
}

TEST_F(CheckpointTest, OpensShardedIndex) {
  WriteShardedModel();
  auto c = Checkpoint::Open(Path("model.safetensors.index.json"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ((*c)->shards().size(), 2u);
  const SafetensorsEntry* e = (*c)->find("c");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->file, Path("model-00002-of-00002.safetensors"));
  float v = 0;
  ASSERT_TRUE(ConvertToF32(*e, &v).ok());
  EXPECT_EQ(v, 1.0f);
  ASSERT_TRUE(ConvertToF32(*(*c)->find("b"), &v).ok());
  EXPECT_EQ(v, 2.0f);
}

TEST_F(CheckpointTest, FolderPrefersItsIndexOverShards) {
  WriteShardedModel();
  auto c = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->path(), Path("model.safetensors.index.json"));
  EXPECT_EQ((*c)->names().size(), 3u);
}

// A folder that does not say which file is the checkpoint is a broken model (the model's folder
// layout, not the user, names a component's folder).
TEST_F(CheckpointTest, RejectsAmbiguousFolders) {
  WriteShard("one.safetensors", {"x"});
  WriteShard("two.safetensors", {"y"});
  std::string m = OpenError(dir_.string(), Code::kModel);
  EXPECT_TRUE(HasSubstr(m, "one.safetensors, two.safetensors"));
  WriteIndex("a.safetensors.index.json", {{"x", "one.safetensors"}});
  WriteIndex("b.safetensors.index.json", {{"y", "two.safetensors"}});
  m = OpenError(dir_.string(), Code::kModel);
  EXPECT_TRUE(HasSubstr(m, "a.safetensors.index.json, b.safetensors.index.json"));
}

TEST_F(CheckpointTest, RejectsEmptyFolderAndMissingPath) {
  EXPECT_TRUE(HasSubstr(OpenError(dir_.string(), Code::kIo), "no .safetensors file"));
  EXPECT_TRUE(HasSubstr(OpenError(Path("absent"), Code::kIo), Path("absent")));
}

TEST_F(CheckpointTest, RejectsIndexNamingMissingShard) {
  WriteShard("s1.safetensors", {"a"});
  WriteIndex("m.safetensors.index.json", {{"a", "s1.safetensors"}, {"q", "s9.safetensors"}});
  std::string m = OpenError(Path("m.safetensors.index.json"), Code::kIo);
  EXPECT_TRUE(HasSubstr(m, Path("m.safetensors.index.json")));
  EXPECT_TRUE(HasSubstr(m, "shard 's9.safetensors'"));
  EXPECT_TRUE(HasSubstr(m, "'q'"));
}

TEST_F(CheckpointTest, RejectsShardPathsOutsideTheIndexFolder) {
  WriteShard("s1.safetensors", {"a"});
  for (const char* shard : {"../s1.safetensors", "/etc/passwd", "sub/s1.safetensors", ".."}) {
    WriteIndex("m.safetensors.index.json", {{"a", shard}});
    std::string m = OpenError(Path("m.safetensors.index.json"), Code::kModel);
    EXPECT_TRUE(HasSubstr(m, "not a file name beside the index")) << shard << ": " << m;
  }
}

TEST_F(CheckpointTest, RejectsShardLackingItsTensor) {
  WriteShard("s1.safetensors", {"a"});
  WriteIndex("m.safetensors.index.json", {{"a", "s1.safetensors"}, {"ghost", "s1.safetensors"}});
  std::string m = OpenError(Path("m.safetensors.index.json"), Code::kModel);
  EXPECT_TRUE(HasSubstr(m, Path("m.safetensors.index.json")));
  EXPECT_TRUE(HasSubstr(m, "tensor 'ghost' in shard 's1.safetensors'"));
}

TEST_F(CheckpointTest, RejectsMalformedIndex) {
  test::WriteFile(Path("m.safetensors.index.json"), "{\n  \"weight_map\": {\n    \"a\": }\n}");
  EXPECT_TRUE(HasSubstr(OpenError(Path("m.safetensors.index.json"), Code::kModel), "line 3"));
  test::WriteFile(Path("m.safetensors.index.json"), R"({"metadata": {}})");
  EXPECT_TRUE(HasSubstr(OpenError(Path("m.safetensors.index.json"), Code::kModel), "'weight_map'"));
  test::WriteFile(Path("m.safetensors.index.json"), R"({"weight_map": {"a": 3}})");
  EXPECT_TRUE(HasSubstr(OpenError(Path("m.safetensors.index.json"), Code::kModel),
                        "weight_map entry 'a' must name a shard file, got 3"));
}

TEST_F(CheckpointTest, ShardErrorsNameTheShard) {
  test::WriteFile(Path("s1.safetensors"), "xyz");
  WriteIndex("m.safetensors.index.json", {{"a", "s1.safetensors"}});
  EXPECT_TRUE(
      HasSubstr(OpenError(Path("m.safetensors.index.json"), Code::kModel), Path("s1.safetensors")));
}

}  // namespace
}  // namespace ds
