#include "tests/faults/alloc_hook.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

namespace faults {
namespace {

std::atomic<bool> g_counting{false};
std::atomic<long> g_count{0};
std::atomic<long> g_fail_at{-1};
std::atomic<bool> g_failed{false};
thread_local int t_paused = 0;

// nlohmann/json's destructor allocates a stack to free nested values without recursion, inside a
// noexcept function: an allocation failure there calls std::terminate in any program
// (nlohmann/json#4653, #5135; unfixed in 3.11.2). The hook postpones a failure that would land
// there (or in another third-party range below) to the next allocation, so that the sweeps test
// our code. Found from the symbol tables of
// the test program and libditstream (not stripped in any of our build types).
struct Range {
  uintptr_t begin, end;
};
std::vector<Range> g_third_party_noexcept;

bool IsJsonDestructor(const char* name) {
  return std::strstr(name, "nlohmann") != nullptr &&
         (std::strstr(name, "10json_value7destroy") != nullptr || std::strstr(name, "ED1Ev") != nullptr ||
          std::strstr(name, "ED2Ev") != nullptr);
}

void AddSymbols(const char* path, uintptr_t bias) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  void* map = fstat(fd, &st) == 0 ? mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  close(fd);
  if (map == MAP_FAILED) return;
  const auto* base = static_cast<const uint8_t*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64) {
    const auto* sections = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; ++i) {
      if (sections[i].sh_type != SHT_SYMTAB) continue;
      const auto* syms = reinterpret_cast<const Elf64_Sym*>(base + sections[i].sh_offset);
      const char* names = reinterpret_cast<const char*>(base + sections[sections[i].sh_link].sh_offset);
      for (size_t s = 0; s < sections[i].sh_size / sizeof(Elf64_Sym); ++s) {
        if (ELF64_ST_TYPE(syms[s].st_info) == STT_FUNC && syms[s].st_size > 0 &&
            IsJsonDestructor(names + syms[s].st_name)) {
          g_third_party_noexcept.push_back({bias + syms[s].st_value, bias + syms[s].st_value + syms[s].st_size});
        }
      }
    }
  }
  munmap(map, st.st_size);
}

// libsentencepiece (Wan2.1's tokenizer) and the protobuf-lite runtime its messages use are not
// exception-safe: a bad_alloc inside RepeatedPtrField::Add leaves a SentencePieceText whose
// destructor then crashes (found by Allocation.WanGenerateFailsCleanlyAtEveryAllocationAndRecovers).
// Their whole code is such a range.
bool IsNotExceptionSafe(const char* library) {
  return std::strstr(library, "libsentencepiece") != nullptr || std::strstr(library, "libprotobuf") != nullptr;
}

void AddCode(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0) {
      g_third_party_noexcept.push_back({info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz});
    }
  }
}

void FindThirdPartyNoexcept() {
  static std::once_flag once;
  std::call_once(once, [] {
    ++t_paused;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void*) {
          if (info->dlpi_name[0] == '\0')
            AddSymbols("/proc/self/exe", info->dlpi_addr);
          else if (std::strstr(info->dlpi_name, "ditstream") != nullptr)
            AddSymbols(info->dlpi_name, info->dlpi_addr);
          else if (IsNotExceptionSafe(info->dlpi_name))
            AddCode(info);
          return 0;
        },
        nullptr);
    --t_paused;
  });
}

bool InThirdPartyNoexcept() {
  bool inside = false;
  _Unwind_Backtrace(
      [](_Unwind_Context* ctx, void* arg) {
        const uintptr_t pc = _Unwind_GetIP(ctx);
        for (const Range& r : g_third_party_noexcept) {
          if (pc > r.begin && pc <= r.end) {
            *static_cast<bool*>(arg) = true;
            return _URC_END_OF_STACK;
          }
        }
        return _URC_NO_REASON;
      },
      &inside);
  return inside;
}

void* Allocate(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed) && t_paused == 0) {
    const long i = g_count.fetch_add(1, std::memory_order_relaxed);
    if (i == g_fail_at.load(std::memory_order_relaxed)) {
      if (InThirdPartyNoexcept()) {
        g_fail_at.store(i + 1);  // the next one instead
      } else {
        g_failed.store(true);
        throw std::bad_alloc();
      }
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

}  // namespace

void FailAllocation(long k) {
  FindThirdPartyNoexcept();
  g_failed = false;
  g_count = 0;
  g_fail_at = k;
  g_counting = true;
}

void CountAllocations() { FailAllocation(-1); }

long StopCountingAllocations() {
  g_counting = false;
  g_fail_at = -1;
  return g_count.load();
}

bool AllocationFailed() { return g_failed.load(); }

AllocationPause::AllocationPause() { ++t_paused; }
AllocationPause::~AllocationPause() { --t_paused; }

}  // namespace faults

// Every replaceable form but the aligned ones (left to the library, with their own deletes), so that
// no allocation pairs our operator new with another library's delete or the other way round.
void* operator new(std::size_t n) { return faults::Allocate(n); }
void* operator new[](std::size_t n) { return faults::Allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return faults::Allocate(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept { return operator new(n, tag); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
