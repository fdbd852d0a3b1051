// A minimal stand-in for GoogleTest, for bench/gpu_check.sh on GPU machines that have no gtest
// (and no package registry to get one). It implements only what the tests in tests/cuda use:
// TEST, TEST_F, EXPECT_/ASSERT_ {TRUE, FALSE, EQ, NE, LT, LE, GT, GE, STREQ}, FAIL, GTEST_SKIP,
// SCOPED_TRACE, AssertionResult, RecordProperty and current_test_info; output and --gtest_filter
// follow GoogleTest's. The meson build always uses the real GoogleTest.
#pragma once

#include <cstring>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace testing {

class AssertionResult {
 public:
  explicit AssertionResult(bool ok) : ok_(ok) {}
  explicit operator bool() const { return ok_; }
  const char* message() const { return message_.c_str(); }
  template <typename T>
  AssertionResult& operator<<(const T& value) {
    std::ostringstream os;
    os << value;
    message_ += os.str();
    return *this;
  }

 private:
  bool ok_;
  std::string message_;
};

inline AssertionResult AssertionSuccess() { return AssertionResult(true); }
inline AssertionResult AssertionFailure() { return AssertionResult(false); }

class TestInfo {
 public:
  TestInfo(std::string suite, std::string name) : suite_(std::move(suite)), name_(std::move(name)) {}
  const char* test_suite_name() const { return suite_.c_str(); }
  const char* name() const { return name_.c_str(); }

 private:
  std::string suite_, name_;
};

class UnitTest {
 public:
  static UnitTest* GetInstance() {
    static UnitTest instance;
    return &instance;
  }
  const TestInfo* current_test_info() const { return current_; }
  const TestInfo* current_ = nullptr;
};

class Test {
 public:
  virtual ~Test() = default;
  static void RecordProperty(const std::string& key, const std::string& value);
  virtual void TestBody() = 0;
  void Run();

 protected:
  virtual void SetUp() {}
  virtual void TearDown() {}
};

namespace internal {

struct State {
  bool failed = false;
  bool skipped = false;
  std::vector<std::string> traces;
};
State& CurrentState();

bool Register(const char* suite, const char* name, std::function<Test*()> factory);

class Message {
 public:
  template <typename T>
  Message& operator<<(const T& value) {
    os_ << value;
    return *this;
  }
  std::string str() const { return os_.str(); }

 private:
  std::ostringstream os_;
};

enum class Kind { kNonFatal, kFatal, kSkip };

class Reporter {
 public:
  Reporter(Kind kind, const char* file, int line, std::string summary)
      : kind_(kind), file_(file), line_(line), summary_(std::move(summary)) {}
  void operator=(const Message& message) const;  // NOLINT: the gtest idiom, returns void

 private:
  Kind kind_;
  const char* file_;
  int line_;
  std::string summary_;
};

class ScopedTrace {
 public:
  ScopedTrace(const char* file, int line, const std::string& message) {
    CurrentState().traces.push_back(std::string(file) + ":" + std::to_string(line) + ": " + message);
  }
  ~ScopedTrace() { CurrentState().traces.pop_back(); }
};

template <typename T>
std::string Print(const T& value) {
  if constexpr (requires(std::ostream & os, const T& v) { os << v; }) {
    std::ostringstream os;
    os << value;
    return os.str();
  } else {
    return "<unprintable>";
  }
}

inline AssertionResult ToResult(const AssertionResult& r, const char*) { return r; }
template <typename T>
AssertionResult ToResult(const T& value, const char* expr) {
  return static_cast<bool>(value) ? AssertionSuccess() : AssertionFailure() << "Value of: " << expr << " is false";
}
template <typename T>
AssertionResult Negate(const T& value, const char* expr) {
  return !static_cast<bool>(value) ? AssertionSuccess() : AssertionFailure() << "Value of: " << expr << " is true";
}
inline AssertionResult Negate(const AssertionResult& r, const char* expr) {
  return !static_cast<bool>(r) ? AssertionSuccess() : AssertionFailure() << "Value of: " << expr << " is true";
}

template <typename A, typename B, typename Op>
AssertionResult Compare(const char* op_text, const char* ea, const char* eb, const A& a, const B& b, Op op) {
  if (op(a, b)) return AssertionSuccess();
  return AssertionFailure() << "Expected: (" << ea << ") " << op_text << " (" << eb << "), actual: " << Print(a)
                            << " vs " << Print(b);
}

inline AssertionResult Near(const char* ea, const char* eb, const char* et, double a, double b, double tolerance) {
  const double diff = a > b ? a - b : b - a;
  if (diff <= tolerance) return AssertionSuccess();
  return AssertionFailure() << "The difference between " << ea << " and " << eb << " is " << diff << ", which exceeds "
                            << et << " (" << tolerance << "): " << a << " vs " << b;
}

inline AssertionResult StrEq(const char* ea, const char* eb, const char* a, const char* b) {
  if (a && b && std::strcmp(a, b) == 0) return AssertionSuccess();
  return AssertionFailure() << "Expected equality of " << ea << " and " << eb << ": \"" << (a ? a : "(null)")
                            << "\" vs \"" << (b ? b : "(null)") << "\"";
}

}  // namespace internal
}  // namespace testing

#define DS_GT_CAT_(a, b) a##b
#define DS_GT_CAT(a, b) DS_GT_CAT_(a, b)

#define DS_GT_TEST_(suite, name, base)                                                                              \
  class suite##_##name##_Test : public base {                                                                       \
   public:                                                                                                          \
    void TestBody() override;                                                                                       \
  };                                                                                                                \
  [[maybe_unused]] static const bool suite##_##name##_registered =                                                  \
      ::testing::internal::Register(#suite, #name, []() -> ::testing::Test* { return new suite##_##name##_Test; }); \
  void suite##_##name##_Test::TestBody()

#define TEST(suite, name) DS_GT_TEST_(suite, name, ::testing::Test)
#define TEST_F(fixture, name) DS_GT_TEST_(fixture, name, fixture)

#define DS_GT_CHECK_(result_expr, on_failure, kind)                                                                    \
  if (const ::testing::AssertionResult ds_gt_r = (result_expr); static_cast<bool>(ds_gt_r)) {                          \
  } else                                                                                                               \
    on_failure ::testing::internal::Reporter(::testing::internal::Kind::kind, __FILE__, __LINE__, ds_gt_r.message()) = \
        ::testing::internal::Message()

#define DS_GT_EXPECT_(r) DS_GT_CHECK_(r, , kNonFatal)
#define DS_GT_ASSERT_(r) DS_GT_CHECK_(r, return, kFatal)

#define EXPECT_TRUE(c) DS_GT_EXPECT_(::testing::internal::ToResult((c), #c))
#define ASSERT_TRUE(c) DS_GT_ASSERT_(::testing::internal::ToResult((c), #c))
#define EXPECT_FALSE(c) DS_GT_EXPECT_(::testing::internal::Negate((c), #c))
#define ASSERT_FALSE(c) DS_GT_ASSERT_(::testing::internal::Negate((c), #c))

#define DS_GT_CMP_(check, op, a, b) \
  check(::testing::internal::Compare(#op, #a, #b, (a), (b), [](const auto& x, const auto& y) { return x op y; }))
#define EXPECT_EQ(a, b) DS_GT_CMP_(DS_GT_EXPECT_, ==, a, b)
#define EXPECT_NE(a, b) DS_GT_CMP_(DS_GT_EXPECT_, !=, a, b)
#define EXPECT_LT(a, b) DS_GT_CMP_(DS_GT_EXPECT_, <, a, b)
#define EXPECT_LE(a, b) DS_GT_CMP_(DS_GT_EXPECT_, <=, a, b)
#define EXPECT_GT(a, b) DS_GT_CMP_(DS_GT_EXPECT_, >, a, b)
#define EXPECT_GE(a, b) DS_GT_CMP_(DS_GT_EXPECT_, >=, a, b)
#define ASSERT_EQ(a, b) DS_GT_CMP_(DS_GT_ASSERT_, ==, a, b)
#define ASSERT_NE(a, b) DS_GT_CMP_(DS_GT_ASSERT_, !=, a, b)
#define ASSERT_LT(a, b) DS_GT_CMP_(DS_GT_ASSERT_, <, a, b)
#define ASSERT_LE(a, b) DS_GT_CMP_(DS_GT_ASSERT_, <=, a, b)
#define ASSERT_GT(a, b) DS_GT_CMP_(DS_GT_ASSERT_, >, a, b)
#define ASSERT_GE(a, b) DS_GT_CMP_(DS_GT_ASSERT_, >=, a, b)
#define EXPECT_STREQ(a, b) DS_GT_EXPECT_(::testing::internal::StrEq(#a, #b, (a), (b)))
#define EXPECT_NEAR(a, b, t) DS_GT_EXPECT_(::testing::internal::Near(#a, #b, #t, (a), (b), (t)))
#define ASSERT_NEAR(a, b, t) DS_GT_ASSERT_(::testing::internal::Near(#a, #b, #t, (a), (b), (t)))

#define FAIL() DS_GT_CHECK_(::testing::AssertionFailure() << "Failed", return, kFatal)
#define GTEST_SKIP() DS_GT_CHECK_(::testing::AssertionFailure() << "Skipped", return, kSkip)
#define SCOPED_TRACE(message) \
  ::testing::internal::ScopedTrace DS_GT_CAT(ds_gt_trace_, __LINE__)(__FILE__, __LINE__, (message))
