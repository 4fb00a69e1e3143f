#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "sip/registrar/ban_list.h"
#include "sip/registrar/digest.h"
#include "sip/stack.h"
#include "sip/store_feed.h"
#include "sip/store_writer.h"

// The registrar (REGISTER, digest auth, location service, keep-alive OPTIONS) and
// intrusion protection. Its caches (extensions, settings, bindings, bans) are loaded once
// and then follow the store's change feed, so the hot path never reads RocksDB; the feed
// also carries what the active writes to a standby, so a standby's caches are warm when it
// takes over. Writes go through the StoreWriter; a new or changed binding is answered
// only once its commit returned (kReplicated), a pure refresh at once (kAsync).
// Signalling thread only, except construction. `stack`, `store`, `writer` outlive it.
namespace pbx::sip {

struct RegistrarCounters {
  uint64_t registers = 0;
  uint64_t challenges = 0;
  uint64_t auth_failures = 0;
  uint64_t dropped = 0;
  uint64_t bans = 0;
};

class Registrar {
 public:
  // `serving`: whether this node answers and writes (the active of a pair). Thread-safe.
  // `offer_sha256`: challenges offer SHA-256 before MD5; false: MD5 alone.
  Registrar(Stack& stack, store::StateStore& store, StoreWriter& writer,
            std::function<bool()> serving, bool offer_sha256);
  ~Registrar();
  Registrar(const Registrar&) = delete;
  Registrar& operator=(const Registrar&) = delete;

  // Loads the caches, subscribes to the feed, installs the REGISTER handler, the admission
  // check and the 1 s housekeeping timer. Signalling thread.
  Status Init();
  // Cancels the feed and the timer. Signalling thread. Call before the stack stops.
  void Shutdown();
  // Cancels the feed subscriptions only; any thread (what they posted may still run).
  void Unsubscribe();

  const RegistrarCounters& counters() const { return counters_; }
  // The cached system settings (call timers among them): they follow the feed, so a change
  // applies to the next request without a restart. Signalling thread.
  const store::SystemSettings& settings() const { return settings_; }

  // What the signalling thread keeps of an extension (the config record, cached).
  struct ExtInfo {
    std::string name;  // caller ID name
    std::string realm;
    std::string ha1_md5;
    std::string ha1_sha256;
    uint32_t max_contacts = 1;
    uint32_t registration_expiry = 120;
    uint32_t qualify_interval = 60;
    bool remote_registration = false;
    bool call_waiting = true;
    std::string dial_permission;  // class of service for calls through trunks
    std::string outbound_cli;     // caller ID on trunks
    std::vector<std::string> codecs;
    std::vector<IpNetwork> trusted;
  };
  // The cached extension, or nullptr. Signalling thread.
  const ExtInfo* FindExtension(const std::string& number) const;
  // The live bindings of `number` (empty if none). Signalling thread.
  std::vector<store::Registration> Contacts(const std::string& number) const;
  // Digest authentication of a request from extension `number` (REGISTER, INVITE: one way
  // for both). True: authenticated, `irq` untouched. False: a challenge, 403 or 503 was
  // sent and `irq` destroyed; failures count toward the source's ban. Signalling thread.
  bool Authenticate(nta_incoming_t* irq, const sip_t* sip, const Source& src,
                    const std::string& number, const char* method);

 private:
  struct Binding {
    store::Registration reg;
    int64_t next_qualify = 0;
    bool qualify_in_flight = false;
  };
  struct Qualify;  // one keep-alive OPTIONS in flight

  bool Admit(const Source& src);
  void OnRegister(nta_incoming_t* irq, const sip_t* sip, const Source& src);
  void UpdateBindings(nta_incoming_t* irq, const sip_t* sip, const Source& src,
                      const std::string& number, const ExtInfo& ext, int64_t now);
  void Challenge(nta_incoming_t* irq, bool stale, int64_t now);
  void Fail(nta_incoming_t* irq, const Source& src, int64_t now, const std::string& why,
            bool challenge);
  void ReplyOk(nta_incoming_t* irq, const std::string& number, int64_t now);
  void Reply(nta_incoming_t* irq, int status, const char* phrase);

  void Tick();
  void SendQualify(Binding& b, int64_t now);
  void OnQualifyDone(nta_outgoing_t* orq, int status);

  void LoadExtensions();
  void LoadSettings();
  void LoadBindings();
  void LoadBans();
  void OnChange(const store::Change& change);
  static ExtInfo ToInfo(const store::Extension& e);

  Stack& stack_;
  store::StateStore& store_;
  StoreWriter& writer_;
  std::function<bool()> serving_;
  bool offer_sha256_;

  store::SystemSettings settings_;
  std::unique_ptr<NonceAuthority> nonces_;
  std::unordered_map<std::string, ExtInfo> extensions_;
  std::unordered_map<std::string, std::vector<Binding>> bindings_;
  BanList bans_;
  StoreFeed feed_;
  std::unordered_map<nta_outgoing_t*, std::unique_ptr<Qualify>> qualifies_;
  su_timer_t* timer_ = nullptr;
  std::mt19937_64 rng_{std::random_device{}()};
  RegistrarCounters counters_;
  std::string www_sha256_;  // scratch buffers of the challenge, reused
  std::string www_md5_;
};

// The id of a binding within an extension: +sip.instance if given (RFC 5626), else the
// Contact URI; hashed to a short key-safe string.
std::string BindingId(std::string_view instance_or_contact);

}  // namespace pbx::sip
