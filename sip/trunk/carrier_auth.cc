#include "sip/trunk/carrier_auth.h"

#include <strings.h>

#include <fmt/format.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>

namespace pbx::sip {

std::optional<CarrierChallenge> ParseCarrierChallenge(int status, const sip_t* reply) {
  if (reply == nullptr || (status != 401 && status != 407)) return std::nullopt;
  bool proxy = status == 407;
  const msg_auth_t* challenges =
      proxy ? reply->sip_proxy_authenticate : reply->sip_www_authenticate;
  const msg_auth_t* pick = nullptr;
  DigestAlgorithm algorithm = DigestAlgorithm::kMd5;
  for (const msg_auth_t* a = challenges; a; a = a->au_next) {
    if (!a->au_scheme || strcasecmp(a->au_scheme, "Digest") != 0) continue;
    std::optional<DigestAlgorithm> alg =
        ParseDigestAlgorithm(DigestParam(a->au_params, "algorithm"));
    if (!alg) continue;
    if (pick == nullptr || *alg == DigestAlgorithm::kSha256) {
      pick = a;
      algorithm = *alg;
    }
  }
  if (pick == nullptr) return std::nullopt;
  CarrierChallenge c;
  c.valid = true;
  c.proxy = proxy;
  c.algorithm = algorithm;
  c.realm = DigestParam(pick->au_params, "realm");
  c.nonce = DigestParam(pick->au_params, "nonce");
  c.opaque = DigestParam(pick->au_params, "opaque");
  c.qop = DigestParam(pick->au_params, "qop");
  return c;
}

std::string AnswerCarrierChallenge(CarrierChallenge& c, const store::Trunk& t,
                                   const std::string& method, const std::string& uri,
                                   std::mt19937_64& rng) {
  std::string nc = fmt::format("{:08x}", ++c.nc);
  std::string cnonce = fmt::format("{:016x}", rng());
  DigestChallengeAnswer a;
  a.username = t.auth_user.empty() ? t.username : t.auth_user;
  a.password = t.password;
  a.realm = c.realm;
  a.nonce = c.nonce;
  a.opaque = c.opaque;
  a.qop_offered = c.qop;
  a.method = method;
  a.uri = uri;
  a.nc = nc;
  a.cnonce = cnonce;
  return DigestAuthorization(c.algorithm, a);
}

}  // namespace pbx::sip
