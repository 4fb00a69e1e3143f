#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

// Network namespaces for system tests (root only). Nothing here connects a namespace to the
// host's, so no test packet leaves them.
namespace pbx::test {

// A network namespace, deleted (ip netns del) with this object.
class Netns {
 public:
  explicit Netns(std::string name) : name_(std::move(name)) {}
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// A switch namespace holding bridge br0, and hosts on it: each a namespace with an eth0
// whose veth peer is a port of br0. Namespaces are named "<prefix><pid>_<role>"; those of
// earlier runs whose process is gone (a crash skips destructors) are removed first.
// Destroying the lab deletes every namespace, and with them the processes' sockets (kill
// the processes first).
class NetLab {
 public:
  explicit NetLab(std::string prefix);
  // Creates the switch. False, with `why`, where namespaces cannot be created (the caller
  // skips the test).
  bool Create(std::string* why);
  // Adds host `role` with `mac` and `addresses` ("10.0.0.1/24"; IPv6 ones without DAD).
  // Returns "" or what failed.
  std::string AddHost(const std::string& role, const std::string& mac,
                      const std::vector<std::string>& addresses);
  // The namespace of `role` ("sw" for the switch).
  std::string ns(const std::string& role) const { return prefix_ + role; }

 private:
  std::string base_;    // "<prefix>"
  std::string prefix_;  // "<prefix><pid>_"
  std::vector<std::unique_ptr<Netns>> netns_;
};

// Runs `fn` on a new thread that has entered network namespace `ns` (sockets it opens live
// there) and returns its result; a default-constructed one if `ns` cannot be entered.
template <typename F>
std::invoke_result_t<F> InNetns(const std::string& ns, F&& fn) {
  std::invoke_result_t<F> result{};
  std::thread t([&] {
    int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    bool entered = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    if (entered) result = fn();
  });
  t.join();
  return result;
}

}  // namespace pbx::test
