#pragma once

// Sofia-sip creates and binds its sockets itself and has no tag to set IP_FREEBIND or to
// take a socket we made. While a FreebindScope is alive on a thread, every bind() on that
// thread first sets IP_FREEBIND (IPV6_FREEBIND), so the virtual IP can be bound on a
// standby that does not hold it yet. freebind.cc wraps libc's bind() to do so; outside a
// scope it only forwards.
namespace pbx::sip {

class FreebindScope {
 public:
  FreebindScope();
  ~FreebindScope();
  FreebindScope(const FreebindScope&) = delete;
  FreebindScope& operator=(const FreebindScope&) = delete;
};

}  // namespace pbx::sip
