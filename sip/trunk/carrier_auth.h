#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include <sofia-sip/sip.h>

#include "replication/store/repos.h"
#include "sip/registrar/digest.h"

// Digest authentication towards a carrier, the client side shared by a trunk's REGISTER
// (trunk_client.h) and the INVITEs of calls through it (calls/trunk_leg.h): the strongest
// challenge of a 401/407 and the credentials answering it with the trunk's auth user and
// password. Pure functions; thread-compatible.
namespace pbx::sip {

struct CarrierChallenge {
  bool valid = false;
  bool proxy = false;  // 407 / Proxy-Authorization
  DigestAlgorithm algorithm = DigestAlgorithm::kMd5;
  std::string realm, nonce, opaque, qop;
  uint32_t nc = 0;  // the last nonce count used with this nonce
};

// The challenge of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) reply; when it
// offers several, SHA-256 over MD5 (RFC 8760). nullopt: no Digest challenge we know.
std::optional<CarrierChallenge> ParseCarrierChallenge(int status, const sip_t* reply);

// The Authorization (or Proxy-Authorization, per `c.proxy`) value answering `c` for
// `method` on `uri` as trunk `t` (auth user, else username; password); counts nc up.
std::string AnswerCarrierChallenge(CarrierChallenge& c, const store::Trunk& t,
                                   const std::string& method, const std::string& uri,
                                   std::mt19937_64& rng);

}  // namespace pbx::sip
