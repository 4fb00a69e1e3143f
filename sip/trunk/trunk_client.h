#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "sip/registrar/digest.h"
#include "sip/stack.h"
#include "sip/store_feed.h"
#include "sip/store_writer.h"
#include "sip/trunk/carrier_auth.h"

// The carrier side of SIP trunks (FEATURES.md §5.3): REGISTER with digest for register
// trunks, and the OPTIONS health check for every trunk. The Call-ID and CSeq of each
// registration live in the replicated runtime table (TrunkStateRepo): a refresh keeps the
// Call-ID and sends CSeq + 1 (RFC 3261 §10.2.4) unless the trunk asks for a new Call-ID per
// REGISTER (seed 004's carrier quirk), and a node that takes over continues the sequence.
// Only a serving (active) node sends anything; a standby follows the state from the feed.
// Trunk config follows the change feed too. Signalling thread only, except construction;
// `stack`, `store`, `writer` outlive it.
namespace pbx::sip {

class TrunkClient {
 public:
  // When this node starts serving, each trunk re-registers after a random delay in
  // [0, takeover_window_ms] (no storm at the carrier); 0: at once.
  TrunkClient(Stack& stack, store::StateStore& store, StoreWriter& writer,
              std::function<bool()> serving, uint32_t takeover_window_ms = 0);
  ~TrunkClient();
  TrunkClient(const TrunkClient&) = delete;
  TrunkClient& operator=(const TrunkClient&) = delete;

  // The address in the Contact of every REGISTER, the one calls use (the VIP when
  // clustered, so the carrier reaches whichever node is active); the port is the stack's
  // for the trunk's transport. Unset: the agent's own address. Before Init.
  void set_contact(std::string host) { contact_host_ = std::move(host); }
  // Loads trunks and their state, subscribes to the feed, starts the tick. Signalling thread.
  Status Init();
  // Cancels the feed and the timer. Signalling thread; before the stack stops.
  void Shutdown();
  // Cancels the feed subscriptions only; any thread.
  void Unsubscribe();

 private:
  // The carrier's last digest challenge: refreshes answer it ahead (nc + 1), as phones do,
  // so a refresh is one REGISTER and the carrier sees CSeq + 1; a stale nonce costs a 401.
  using Challenge = CarrierChallenge;
  struct Line {
    store::Trunk trunk;
    store::TrunkState state;
    int64_t next_register_ms = 0;  // 0: now
    int64_t next_qualify_ms = 0;
    int64_t qualify_sent_ms = 0;
    std::string from_tag;
    Challenge challenge;
    bool auth_tried = false;  // this attempt already answered a fresh challenge
    bool given_up = false;    // max_retries reached; a config change starts again
  };

  enum class Kind : uint8_t { kRegister, kQualify };

  void Tick();
  // A request with the headers every request has; nullptr if sofia fails.
  msg_t* NewRequest(const std::string& request, const std::string& to, const std::string& from,
                    const std::string& call_id, const std::string& cseq);
  // Sends `msg` (consumed) to the trunk; the final reply goes to On*Reply. False if nta
  // refused it.
  bool Send(const Line& line, Kind kind, msg_t* msg);
  bool InFlight(const std::string& name, Kind kind) const;
  // `unregister`: Expires: 0 (same Call-ID, CSeq + 1), for a trunk deleted or disabled.
  void SendRegister(Line& line, bool fresh_call_id, bool unregister = false);
  // A registered trunk that is going away says so to its carrier first. Serving node only.
  void Unregister(Line& line);
  std::string Authorization(Line& line);
  void OnRegisterReply(const std::string& name, int status, const sip_t* reply);
  void SendQualify(Line& line, int64_t now_ms);
  void OnQualifyReply(const std::string& name, int status);
  void Failed(Line& line, int status, std::string reason);
  void Save(Line& line);

  // Trunks and their state from the store (at start, and when a table is reset).
  Status Load();
  void OnChange(const store::Change& change);
  void Apply(const store::Trunk& trunk);
  std::string Target(const store::Trunk& t) const;
  // Where the carrier sends calls for `t`: our address and the port of its transport.
  std::string ContactOf(const store::Trunk& t) const;
  std::string NewCallId();

  Stack& stack_;
  store::StateStore& store_;
  StoreWriter& writer_;
  std::function<bool()> serving_;
  bool was_serving_ = false;
  std::string contact_host_;
  uint32_t takeover_window_ms_ = 0;
  std::map<std::string, Line> lines_;
  // In-flight transactions: the trunk and what they are.
  std::map<nta_outgoing_t*, std::pair<std::string, Kind>> in_flight_;
  StoreFeed feed_;
  su_timer_t* timer_ = nullptr;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace pbx::sip
