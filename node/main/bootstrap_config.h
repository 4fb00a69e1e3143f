#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "node/core/status.h"

namespace pbx::node {

// A host and port, e.g. the peer's replication address "10.0.0.2:7400" or "[fd00::2]:7400".
struct Endpoint {
  std::string host;
  uint16_t port = 0;
};

// An address with its prefix length, e.g. the virtual IP "10.99.0.100/24".
struct Prefix {
  std::string address;
  int length = 0;
  bool ipv6 = false;
};

// The node-local bootstrap file (TOML), parsed once into typed, validated fields. Everything
// else is configured at run time and lives in the replicated store.
struct BootstrapConfig {
  std::string source = "<embedded default>";  // the file it came from

  // [node]
  std::string node_name = "pbx";
  std::string data_dir = ".pbx/data";
  std::string run_dir = ".pbx/run";
  std::string log_level = "info";
  // SCHED_RR priority for the whole daemon (1-99); 0: normal scheduling. See
  // daemon::UseRealtimeScheduling. Refused (no CAP_SYS_NICE): pbxd warns and runs normally.
  int realtime_priority = 0;

  // [api]: the REST API and web admin (HTTPS).
  std::string api_listen = "127.0.0.1";
  uint16_t api_port = 8443;
  std::string web_dir;     // the web admin's files; empty: admin::DefaultWebDir()
  uint16_t http_port = 0;  // plain HTTP that redirects to HTTPS; 0: off
  std::optional<std::string> admin_password;  // first boot only; generated if absent

  // [sip]: parsed now, used by the SIP stack.
  std::string sip_listen = "0.0.0.0";
  uint16_t sip_udp_port = 5060;
  uint16_t sip_tcp_port = 5060;
  uint16_t sip_tls_port = 5062;  // the seed's default (FEATURES §8.2), not IANA 5061
  // The 401 offers SHA-256 (first) and MD5. Off: MD5 only, for phones that refuse a 401
  // listing an algorithm they do not know (libre/baresip 1.x). Both nodes of a pair alike.
  bool sip_digest_sha256 = true;

  // [media]: the RTP relay. `address` (bound, and named in SDP) defaults to the VIP when
  // clustered, else the SIP listen address, else this host's primary address.
  std::string media_address;
  uint16_t rtp_port_min = 10000;
  uint16_t rtp_port_max = 20000;

  // [cluster]: absent means a single node.
  struct Cluster {
    std::string name = "pbx";         // the pair's identity: both nodes and the witness must agree
    Endpoint listen;                  // our replication address
    Endpoint peer;                    // the other node's replication address
    std::optional<Prefix> vip;        // the virtual IP
    std::string interface;            // where the VIP lives
    std::optional<Endpoint> witness;  // pbx-witness
    std::optional<std::string> ping_target;  // tie-breaker when there is no witness
    uint32_t hb_interval_ms = 100;
    uint32_t hb_dead = 5;  // missed heartbeats before the peer is dead
    // At takeover each trunk re-registers after a random delay in [0, this] so that a
    // pair with many trunks does not hit its carriers all at once.
    uint32_t trunk_reregister_window_ms = 2000;
  };
  std::optional<Cluster> cluster;

  // [store]
  uint64_t wal_ttl_seconds = 3600;
  uint64_t wal_size_limit_mb = 1024;

  // [demo]: the embedded default creates demo extensions 1001-1005 at first boot.
  bool demo_extensions = true;
};

// Parses and validates `path`. Errors read "FILE:LINE: what is wrong".
Result<BootstrapConfig> LoadBootstrapConfig(const std::string& path);
// The same from a string; `source` names it in errors.
Result<BootstrapConfig> ParseBootstrapConfig(std::string_view text, const std::string& source);

// "10.0.0.2:7400", "[fd00::2]:7400", "host:7400" -> Endpoint.
Result<Endpoint> ParseEndpoint(std::string_view text);
// "10.99.0.100/24", "fd00::100/64" -> Prefix.
Result<Prefix> ParsePrefix(std::string_view text);

}  // namespace pbx::node
