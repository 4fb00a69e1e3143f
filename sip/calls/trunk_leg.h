#pragma once

#include <map>
#include <string>
#include <vector>

#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "sip/routing/routing.h"
#include "sip/stack.h"
#include "sip/store_feed.h"

// What the B2BUA needs to call through trunks (FEATURES.md §4-§5): the trunks and the dial
// plan as cached tables that follow the store's change feed, which trunk an INVITE came
// from, and how the B leg towards a trunk is addressed. Signalling thread only, except
// construction and Unsubscribe; `stack` and `store` outlive it.
namespace pbx::sip {

class TrunkDirectory {
 public:
  TrunkDirectory(Stack& stack, store::StateStore& store) : store_(store), feed_(stack, store) {}
  TrunkDirectory(const TrunkDirectory&) = delete;
  TrunkDirectory& operator=(const TrunkDirectory&) = delete;

  // Follows trunks ("trunk/"), routes ("route/") and "settings/routing", then loads.
  Status Init();
  void Unsubscribe() { feed_.Stop(); }

  // The trunk called `name` if it exists and is enabled, else nullptr.
  const store::Trunk* Find(const std::string& name) const;
  const routing::RoutingTables& tables() const { return tables_; }

  // The enabled trunk an out-of-dialog request from `src` came from, or nullptr: a peer
  // trunk when `src` is its host's (or outbound proxy's) address; a register trunk when,
  // besides, the Request-URI user is the trunk's username (the Contact it registered).
  // Host names are resolved when the trunk is loaded (one blocking lookup per change).
  const store::Trunk* MatchInbound(const Source& src, const std::string& request_user) const;

 private:
  struct Entry {
    store::Trunk trunk;
    std::vector<std::string> addresses;  // numeric, as Source::ip_text spells them
  };
  void Reload();

  store::StateStore& store_;
  StoreFeed feed_;
  std::map<std::string, Entry> trunks_;
  routing::RoutingTables tables_;
};

// A display name quoted for a From header (quotes and backslashes escaped, CR/LF dropped).
std::string Quoted(const std::string& name);

// How an INVITE reaches a trunk for `number` (already stripped/prepended by the route).
struct TrunkTarget {
  std::string request_uri;  // sip:<number>@<host>[:port]
  std::string route;        // where it is sent: the outbound proxy, else host:port
  std::string from;         // "name" <sip:<caller id>@<domain>> (no tag)
  std::string to;           // <sip:<number>@<domain>>
};
TrunkTarget OutboundTarget(const store::Trunk& t, const std::string& number,
                           const std::string& caller_id, const std::string& display);

// The caller ID presented on a trunk: the route's, else the trunk's own when its cli_mode is
// "trunk" (or the extension has none), else the extension's outbound CLI, else its number.
std::string OutboundCallerId(const std::string& route_cli, const store::Trunk& t,
                             const std::string& extension_cli, const std::string& extension);

// The called number of an INVITE from trunk `t`: the To user for a register trunk (the
// carrier sends to the Contact we registered, whose user is our username), else the
// Request-URI user.
std::string InboundDid(const store::Trunk& t, const std::string& request_user,
                       const std::string& to_user);

}  // namespace pbx::sip
