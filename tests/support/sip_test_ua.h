#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// A small SIP user agent over UDP for message-level tests: it builds REGISTERs (with
// digest authentication when given a password), sends raw bytes for the malformed cases,
// and reads responses. It answers keep-alive OPTIONS by itself while it waits.
// One thread; not thread-safe.
namespace pbx::test {

// A response (status > 0), or a request (status 0, `method` set) from ReceiveMessage.
struct SipResponse {
  int status = 0;
  std::string method;
  std::string raw;
  // The value of the first header `name` (case-insensitive), or "" if absent.
  std::string Header(std::string_view name) const;
  // Every value of `name`, in order (e.g. the two WWW-Authenticate challenges).
  std::vector<std::string> Headers(std::string_view name) const;
};

class SipTestUa {
 public:
  // Binds UDP `local_ip`:0. A different 127.x address looks like a different source.
  SipTestUa(std::string local_ip, std::string server_ip, uint16_t server_port);
  ~SipTestUa();
  SipTestUa(const SipTestUa&) = delete;
  SipTestUa& operator=(const SipTestUa&) = delete;

  uint16_t local_port() const { return local_port_; }
  std::string contact(const std::string& user) const;

  bool SendRaw(const std::string& message);
  // The next response (requests are answered or ignored), or nullopt after `timeout`.
  std::optional<SipResponse> Receive(std::chrono::milliseconds timeout = std::chrono::seconds(3));
  // The next response or request (keep-alive OPTIONS are answered and skipped).
  std::optional<SipResponse> ReceiveMessage(
      std::chrono::milliseconds timeout = std::chrono::seconds(3));
  // Answers `request` with its Via, From, To (plus `to_tag` if not empty), Call-ID, CSeq,
  // then `extra_headers` (each ending in CRLF) and `body` (application/sdp if not empty).
  bool Respond(const SipResponse& request, int status, const std::string& reason,
               const std::string& to_tag = "", const std::string& extra_headers = "",
               const std::string& body = "");
  // The Authorization header value answering `challenge` (a 401) for `method` on `uri`.
  // Empty if the 401 offers no challenge with `algorithm`.
  static std::string Authorization(const SipResponse& challenge, const std::string& user,
                                   const std::string& password, const std::string& method,
                                   const std::string& uri, const std::string& algorithm = "MD5");
  std::string local_ip() const { return local_ip_; }
  // How many OPTIONS this UA answered so far.
  int options_answered() const { return options_answered_; }

  struct Register {
    std::string user = {};
    std::string password = {};               // empty: send no credentials
    std::optional<uint32_t> expires = 3600;  // Expires header
    std::string contact = {};                // default: contact(user); "*" to remove all
    std::string algorithm = "SHA-256";       // which challenge to answer: "SHA-256" or "MD5"
    std::string call_id = {};                // default: one per UA and user
  };
  // REGISTER; with a password, answers a 401 challenge once. The final response.
  std::optional<SipResponse> DoRegister(const Register& r);
  // A single REGISTER with an Authorization computed for `challenge` (a 401 response).
  std::optional<SipResponse> RegisterWithChallenge(const Register& r, const SipResponse& challenge);

 private:
  std::string BuildRegister(const Register& r, const std::string& authorization);
  int fd_ = -1;
  std::string local_ip_;
  uint16_t local_port_ = 0;
  std::string server_ip_;
  uint16_t server_port_ = 0;
  uint32_t cseq_ = 1;
  uint64_t branch_ = 1;
  int options_answered_ = 0;
};

}  // namespace pbx::test
