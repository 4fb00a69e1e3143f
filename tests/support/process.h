#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <sys/types.h>

namespace pbx::test {

// A temporary directory, removed with everything in it when this object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `pred` until it holds or `timeout` passes (no fixed sleeps in tests).
bool WaitFor(const std::function<bool()>& pred,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A real child process (pbxd, pbxctl, a SIP peer). Its stdout and stderr go to `log_path`.
// SIGTERM, then SIGKILL after a grace period, when this object dies.
class Process {
 public:
  Process(std::vector<std::string> argv, std::string log_path,
          std::map<std::string, std::string> env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `sig`; for SIGTERM/SIGKILL waits for the exit. Returns the exit status (as
  // waitpid reports it) or -1 if it did not exit within `timeout`.
  int Signal(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for exit; returns the exit code, 128+signal if killed, -1 on timeout.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs a command to completion (bounded by `timeout`) and collects its output.
CommandResult Run(const std::vector<std::string>& argv,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30),
                  const std::map<std::string, std::string>& env = {});

std::string ReadFile(const std::string& path);

}  // namespace pbx::test
