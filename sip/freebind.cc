#include "sip/freebind.h"

#include <dlfcn.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "node/core/log.h"

namespace {
thread_local int g_freebind_depth = 0;
using BindFn = int (*)(int, const struct sockaddr*, socklen_t);
}  // namespace

namespace pbx::sip {
FreebindScope::FreebindScope() { ++g_freebind_depth; }
FreebindScope::~FreebindScope() { --g_freebind_depth; }
}  // namespace pbx::sip

// Interposes libc's bind() for the whole process (the executable's symbol wins over
// libc's, also for calls made inside libsofia-sip). Outside a FreebindScope it forwards
// unchanged.
extern "C" int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  static BindFn real = reinterpret_cast<BindFn>(dlsym(RTLD_NEXT, "bind"));
  PBX_CHECK(real != nullptr);
  if (g_freebind_depth > 0 && addr != nullptr) {
    int one = 1;
    if (addr->sa_family == AF_INET) {
      setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    } else if (addr->sa_family == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
    }
  }
  return real(fd, addr, len);
}
