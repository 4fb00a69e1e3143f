#include "node/cluster/nng_peer.h"

#include <arpa/inet.h>
#include <fmt/format.h>

namespace pbx::cluster {

std::string PeerOf(nng_msg* msg) {
  nng_sockaddr sa;
  if (nng_pipe_get_addr(nng_msg_get_pipe(msg), NNG_OPT_REMADDR, &sa) != 0) return "?";
  char buf[INET6_ADDRSTRLEN] = {};
  switch (sa.s_family) {
    case NNG_AF_INET:
      inet_ntop(AF_INET, &sa.s_in.sa_addr, buf, sizeof(buf));
      return fmt::format("{}:{}", buf, ntohs(sa.s_in.sa_port));
    case NNG_AF_INET6:
      inet_ntop(AF_INET6, sa.s_in6.sa_addr, buf, sizeof(buf));
      return fmt::format("[{}]:{}", buf, ntohs(sa.s_in6.sa_port));
    case NNG_AF_IPC:
      return "ipc";
    default:
      return "?";
  }
}

}  // namespace pbx::cluster
