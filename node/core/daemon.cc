#include "node/core/daemon.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace pbx::daemon {

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

const char* WaitForStopSignal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  return sig == SIGINT ? "SIGINT" : "SIGTERM";
}

Status UseRealtimeScheduling(int priority) {
  sched_param param{};
  param.sched_priority = priority;
  if (int e = pthread_setschedparam(pthread_self(), SCHED_RR, &param); e != 0) {
    return Status::Unavailable(
        fmt::format("real-time priority {} refused: {}", priority, std::strerror(e)));
  }
  return Status::Ok();
}

Status WriteFileAtomically(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::Io(fmt::format("cannot write {}: {}", tmp, strerror(errno)));
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Io(fmt::format("cannot write {}: {}", path, strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace pbx::daemon
