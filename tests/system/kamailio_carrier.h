#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/process.h"

// Kamailio (Debian's kamailio) playing the SIP carrier of trunk tests, from the template
// tests/system/kamailio_carrier.cfg: a registrar with digest auth (realm "carrier") over a
// db_text subscriber table, a proxy that routes INVITEs by its location table (a DID
// "555..." to the trunk's AoR "acme"), and log lines per REGISTER and INVITE (received and
// sent, with their transport). It runs on loopback or in a network namespace; kamcmd reads
// its location table over a unix socket. Besides UDP it listens on TCP and TLS when asked
// (`tcp`, `tls`): the TLS certificate is made with openssl into `dir` at Start
// (self-signed, never committed), and Kamailio connects to TLS contacts without verifying
// them.
namespace pbx::test {

inline constexpr char kKamailioPath[] = "/usr/sbin/kamailio";

// Whether kamailio and kamcmd are installed (deploy/install-deps.sh --test), with its TLS
// module (kamailio-tls-modules) when `tls`; tests skip without them.
bool KamailioInstalled(bool tls = false);

struct CarrierOptions {
  std::string dir = "";    // configuration, db_text tables, control socket (created)
  std::string netns = "";  // "": the host's namespace
  std::string address = "127.0.0.1";
  // 0: 5060 in a namespace, else a UDP port free on `address` now (Kamailio needs a
  // fixed one in its configuration).
  uint16_t port = 0;
  bool tcp = false;  // also TCP on `port`
  bool tls = false;  // also TLS on `tls_port`
  // 0: 5061 in a namespace, else a TCP port free on `address` now.
  uint16_t tls_port = 0;
  // INVITEs from this address are not challenged (the carrier's own customer); INVITEs
  // from anyone else need proxy authentication, as from the PBX's trunk.
  std::string far_address = "";
  // false: INVITEs from anyone need no proxy authentication.
  bool challenge_invites = true;
  // Calls to 556... go to this SIP URI (a PBX with the carrier as its peer trunk,
  // e.g. "sip:127.0.0.1:5060;transport=tcp"); "": no such numbers.
  std::string peer = "";
  // Subscribers (user, plain password) who may register and call.
  std::vector<std::pair<std::string, std::string>> subscribers = {};
};

// One REGISTER or initial INVITE the carrier received (its log), in order of arrival.
struct CarrierRequest {
  std::string method;
  std::string user;  // the To user: the AoR registered, the number called
  std::string call_id;
  int cseq = 0;
  std::string proto;  // "udp", "tcp" or "tls", as it arrived
  std::string conid;  // Kamailio's TCP/TLS connection id ("<null>" over UDP)
  std::string contact;
  std::string via;  // the topmost Via
};

// What the carrier's location table holds for an AoR.
struct CarrierBinding {
  std::string call_id;
  int cseq = -1;
  bool operator==(const CarrierBinding&) const = default;
};

class KamailioCarrier {
 public:
  explicit KamailioCarrier(CarrierOptions options);
  ~KamailioCarrier();  // stops it
  KamailioCarrier(const KamailioCarrier&) = delete;
  KamailioCarrier& operator=(const KamailioCarrier&) = delete;

  // Writes the configuration and starts Kamailio; "" once it answers on its control
  // socket, else what failed (with its log). After Stop, starts it again on the same ports
  // with an empty location table (a carrier restart: its connections are gone).
  std::string Start(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The REGISTERs it received for `user`.
  std::vector<CarrierRequest> Registers(const std::string& user) const;
  // The requests of `method` (REGISTER, INVITE) it received, for every user.
  std::vector<CarrierRequest> Requests(const std::string& method) const;
  // The transport ("udp", "tcp", "tls") of every INVITE it sent to `address`:`port`.
  std::vector<std::string> InvitesSentTo(const std::string& address, uint16_t port) const;
  // The binding of `user` in its location table (kamcmd ul.lookup), if any.
  std::optional<CarrierBinding> Binding(const std::string& user) const;
  // Stops Kamailio (SIGTERM); idempotent.
  void Stop();
  std::string Log() const;

  uint16_t port() const { return options_.port; }
  uint16_t tls_port() const { return options_.tls_port; }
  // The certificate Kamailio presents over TLS (PEM), once started with `tls`.
  std::string tls_certificate() const { return options_.dir + "/carrier-cert.pem"; }
  const std::string& address() const { return options_.address; }

 private:
  std::string Kamcmd(const std::vector<std::string>& args) const;

  CarrierOptions options_;
  std::string ctl_;
  std::unique_ptr<Process> process_;
};

}  // namespace pbx::test
