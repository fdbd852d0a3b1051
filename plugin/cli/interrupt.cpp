#include "interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>

#include "output_file.h"

namespace ditgen::interrupt {
namespace {

int wake_pipe[2] = {-1, -1};
std::atomic<int> first_signal{0};
// Signals after the first, before generation stopped. One more can arrive on its own: `timeout`,
// a terminal hang-up or a process manager may signal the process and then its process group.
int later_signals = 0;
constexpr int kSignalsToQuitAtOnce = 3;
std::mutex target_mutex;
ds_generator* target = nullptr;

void on_signal(int signal_number) {
  int saved_errno = errno;
  auto byte = static_cast<unsigned char>(signal_number);
  [[maybe_unused]] ssize_t n = write(wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

void watch() {
  for (;;) {
    unsigned char byte = 0;
    ssize_t n = read(wake_pipe[0], &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return;
    int signal_number = byte;
    int expected = 0;
    if (first_signal.compare_exchange_strong(expected, signal_number)) {
      std::lock_guard lock(target_mutex);
      if (target) ds_cancel(target);
    } else if (++later_signals + 1 >= kSignalsToQuitAtOnce) {
      // Generation did not stop in time (or a write is stuck on a full pipe): leave now.
      remove_pending_outputs();
      static constexpr char kMessage[] = "ditgen: interrupted again; quitting at once, no output written\n";
      [[maybe_unused]] ssize_t written = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
      _exit(128 + signal_number);
    }
  }
}

}  // namespace

void install() {
  if (pipe2(wake_pipe, O_CLOEXEC) != 0) return;  // no watcher: signals keep their default effect
  std::thread(watch).detach();
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGHUP, &action, nullptr);  // a closed terminal or dropped SSH session: clean up too
}

void set_target(ds_generator* gen) {
  std::lock_guard lock(target_mutex);
  target = gen;
  if (gen && first_signal.load()) ds_cancel(gen);
}

int received() { return first_signal.load(); }

}  // namespace ditgen::interrupt
