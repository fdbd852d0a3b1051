// Runner of the minimal GoogleTest stand-in (see gtest/gtest.h): runs every registered test that
// --gtest_filter selects (patterns with * and ?, ':'-separated, negatives after '-') and prints
// GoogleTest's result lines; exits 1 when a test failed.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace testing {
namespace internal {

namespace {

struct Entry {
  std::string suite, name;
  std::function<Test*()> factory;
};

std::vector<Entry>& Tests() {
  static std::vector<Entry> tests;
  return tests;
}

bool Glob(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') return Glob(p + 1, s) || (*s != '\0' && Glob(p, s + 1));
  return *s != '\0' && (*p == '?' || *p == *s) && Glob(p + 1, s + 1);
}

bool AnyMatches(const std::string& patterns, const std::string& name) {
  size_t start = 0;
  while (start <= patterns.size()) {
    size_t end = patterns.find(':', start);
    if (end == std::string::npos) end = patterns.size();
    if (end > start && Glob(patterns.substr(start, end - start).c_str(), name.c_str())) return true;
    start = end + 1;
  }
  return false;
}

bool Selected(const std::string& filter, const std::string& name) {
  const size_t dash = filter.find('-');
  const std::string positive = dash == std::string::npos ? filter : filter.substr(0, dash);
  const std::string negative = dash == std::string::npos ? "" : filter.substr(dash + 1);
  return AnyMatches(positive.empty() ? "*" : positive, name) && !AnyMatches(negative, name);
}

}  // namespace

State& CurrentState() {
  static State state;
  return state;
}

bool Register(const char* suite, const char* name, std::function<Test*()> factory) {
  Tests().push_back({suite, name, std::move(factory)});
  return true;
}

void Reporter::operator=(const Message& message) const {
  State& st = CurrentState();
  if (kind_ == Kind::kSkip) {
    st.skipped = true;
    std::cout << file_ << ":" << line_ << ": Skipped\n" << message.str() << "\n";
    return;
  }
  st.failed = true;
  std::cout << file_ << ":" << line_ << ": Failure\n" << summary_ << "\n" << message.str() << "\n";
  if (!st.traces.empty()) {
    std::cout << "Google Test trace:\n";
    for (auto it = st.traces.rbegin(); it != st.traces.rend(); ++it) std::cout << *it << "\n";
  }
}

}  // namespace internal

void Test::RecordProperty(const std::string& key, const std::string& value) {
  std::cout << "  property " << key << " = " << value << "\n";
}

void Test::Run() {
  SetUp();
  const internal::State& st = internal::CurrentState();
  if (!st.failed && !st.skipped) TestBody();
  TearDown();
}

}  // namespace testing

int main(int argc, char** argv) {
  using namespace testing;
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--gtest_filter=", 0) == 0) filter = arg.substr(15);
  }
  int passed = 0;
  std::vector<std::string> failed, skipped;
  for (const auto& t : internal::Tests()) {
    const std::string full = t.suite + "." + t.name;
    if (!internal::Selected(filter, full)) continue;
    TestInfo info(t.suite, t.name);
    UnitTest::GetInstance()->current_ = &info;
    internal::CurrentState() = internal::State();
    std::cout << "[ RUN      ] " << full << std::endl;
    std::unique_ptr<Test> test(t.factory());
    test->Run();
    const internal::State& st = internal::CurrentState();
    if (st.failed) {
      failed.push_back(full);
      std::cout << "[  FAILED  ] " << full << std::endl;
    } else if (st.skipped) {
      skipped.push_back(full);
      std::cout << "[  SKIPPED ] " << full << std::endl;
    } else {
      ++passed;
      std::cout << "[       OK ] " << full << std::endl;
    }
    UnitTest::GetInstance()->current_ = nullptr;
  }
  std::cout << "[  PASSED  ] " << passed << " tests.\n";
  if (!skipped.empty()) {
    std::cout << "[  SKIPPED ] " << skipped.size() << " tests, listed below:\n";
    for (const auto& s : skipped) std::cout << "[  SKIPPED ] " << s << "\n";
  }
  if (!failed.empty()) {
    std::cout << "[  FAILED  ] " << failed.size() << " tests, listed below:\n";
    for (const auto& f : failed) std::cout << "[  FAILED  ] " << f << "\n";
  }
  return failed.empty() ? 0 : 1;
}
