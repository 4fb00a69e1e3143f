#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

// The pbxctl verbs, separate from argument parsing (main.cc) so tests can run them against an
// in-process API server. Each Run* function writes its result to `out`, diagnostics to `err`,
// and returns the process exit code. Not thread-safe (one command at a time per streams).
namespace pbx::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;       // the API refused or failed the request
inline constexpr int kExitUsage = 2;       // bad command line
inline constexpr int kExitNotRunning = 3;  // no pbxd to talk to

// How to reach and authenticate to the API (the global options of pbxctl).
struct GlobalOptions {
  std::string run_dir;  // empty: DefaultRunDir(); used unless api_url is set
  std::string api_url;  // --api: talk to this URL instead of the local daemon
  std::string token;    // --token
  std::string user;     // --user/--password: log in first
  std::string password;
  std::string ca_file;    // --ca: PEM to verify the server with (default: ready.json api_cert)
  bool insecure = false;  // --insecure: do not verify the server certificate
  bool json = false;      // --json: print the API's JSON instead of tables
};

struct ExtAddOptions {
  std::string number;
  std::string name;
  std::string password;  // empty: generate one and print it once
  std::string email;
  std::string mobile;
  std::string transport;
  std::string dtmf_mode;
  std::optional<uint32_t> max_contacts;
  std::optional<bool> web_login;
  std::optional<bool> call_waiting;
  std::vector<std::string> codecs;
  std::string voicemail_pin;
};

int RunStatus(const GlobalOptions& g, std::ostream& out, std::ostream& err);
int RunExtList(const GlobalOptions& g, std::ostream& out, std::ostream& err);
int RunExtShow(const GlobalOptions& g, const std::string& number, std::ostream& out,
               std::ostream& err);
int RunExtAdd(const GlobalOptions& g, const ExtAddOptions& add, std::ostream& out,
              std::ostream& err);
int RunExtDel(const GlobalOptions& g, const std::string& number, std::ostream& out,
              std::ostream& err);
// Registered contacts (location service), and the intrusion-protection ban list.
int RunRegList(const GlobalOptions& g, std::ostream& out, std::ostream& err);
int RunBanList(const GlobalOptions& g, std::ostream& out, std::ostream& err);
int RunBanDel(const GlobalOptions& g, const std::string& ip, std::ostream& out, std::ostream& err);
// SIP trunks with their registration state. `set` holds KEY=VALUE pairs of any trunk field
// (VALUE as JSON if it parses, e.g. expiry=60 or codecs=["PCMA"], else as a string).
struct TrunkAddOptions {
  std::string name;
  std::string host;
  std::vector<std::string> set;
};
int RunTrunkList(const GlobalOptions& g, std::ostream& out, std::ostream& err);
int RunTrunkAdd(const GlobalOptions& g, const TrunkAddOptions& add, std::ostream& out,
                std::ostream& err);
int RunTrunkDel(const GlobalOptions& g, const std::string& name, std::ostream& out,
                std::ostream& err);
// The dial plan: KIND is outbound, inbound, did, blacklist, time-condition, permission or
// pin-set; `body` is the record as JSON (the fields of /api/v1/<kind>).
int RunRouteList(const GlobalOptions& g, const std::string& kind, std::ostream& out,
                 std::ostream& err);
int RunRouteAdd(const GlobalOptions& g, const std::string& kind, const std::string& body,
                std::ostream& out, std::ostream& err);
int RunRouteDel(const GlobalOptions& g, const std::string& kind, const std::string& key,
                std::ostream& out, std::ostream& err);

// Calls in progress, and the call detail records (filters as GET /api/v1/cdr takes them).
struct CdrFilter {
  std::optional<int64_t> from, to;  // unix seconds, start time
  std::string caller, callee, type, pin;
  std::optional<uint32_t> limit;
};
int RunCalls(const GlobalOptions& g, std::ostream& out, std::ostream& err);
int RunCdr(const GlobalOptions& g, const CdrFilter& f, std::ostream& out, std::ostream& err);
// Hands the active role to the caught-up standby (run against the active node).
int RunSwitchover(const GlobalOptions& g, std::ostream& out, std::ostream& err);
// Takes this node out of service (`on`) or back in; `force` lets an active without a
// caught-up standby stop serving.
int RunMaintenance(const GlobalOptions& g, bool on, bool force, std::ostream& out,
                   std::ostream& err);

// Human renderings, exposed for tests. Columns are aligned by terminal cells (East Asian
// wide characters count as two), so Chinese and Latin names line up.
std::string FormatStatus(const nlohmann::json& status, int64_t now_unix);
std::string FormatExtensionTable(const nlohmann::json& list);
std::string FormatExtension(const nlohmann::json& ext);

}  // namespace pbx::cli
