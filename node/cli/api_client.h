#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "node/core/status.h"

// The pbxctl side of the REST API (node/admin/api_server.h): finding the local daemon through
// its run directory, and JSON calls over HTTPS. Not thread-safe: one ApiClient per thread.
namespace pbx::cli {

// RUN_DIR/ready.json, written by pbxd once it serves.
struct RunInfo {
  int64_t pid = 0;
  std::string node;
  int api_port = 0;
  std::string api_url;   // "https://127.0.0.1:PORT"
  std::string api_cert;  // absolute path of the API's certificate (PEM)
};

// $PBX_RUN_DIR if set, else ./.pbx/run if that directory exists, else /run/pbx.
std::string DefaultRunDir();
// Reads and checks RUN_DIR/ready.json. NotFound if it does not exist; InvalidArgument if it
// is not what pbxd writes; Io if it cannot be read.
Result<RunInfo> ReadRunInfo(const std::string& run_dir);
// Whether a process with this pid exists (it may belong to another user).
bool ProcessAlive(int64_t pid);
// The first line of a token file (RUN_DIR/admin.token), without surrounding whitespace.
Result<std::string> ReadTokenFile(const std::string& path);

struct ClientOptions {
  std::string url;        // "https://host:port" (or http://)
  std::string ca_file;    // PEM the server certificate must match (https, unless insecure)
  bool insecure = false;  // do not verify the server certificate
  std::string token;      // bearer token; empty until Login()
  int timeout_seconds = 10;
};

// Calls the API. Errors:
//   Unavailable       the API did not answer (connection refused, timeout, unknown host);
//                     this code is never used for anything else, so callers can tell "pbxd is
//                     not running" from every other failure;
//   Unauthenticated   401, or the server certificate failed verification;
//   InvalidArgument / PermissionDenied / NotFound / Conflict for 400 / 403 / 404 / 409;
//   Internal          any other HTTP error (429, 5xx) or a reply that is not JSON;
//   Io                the request failed in transit (TLS handshake, read or write error);
// with the API's error message.
class ApiClient {
 public:
  class Impl;
  // InvalidArgument for a malformed URL or a missing CA file.
  static Result<std::unique_ptr<ApiClient>> Create(const ClientOptions& options);
  explicit ApiClient(std::unique_ptr<Impl> impl);  // use Create()
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // POST /api/v1/login; on success later calls carry the token.
  Status Login(const std::string& user, const std::string& password);

  // `path` is below the host, e.g. "/api/v1/status". Replies are JSON (null for 204).
  Result<nlohmann::json> Get(const std::string& path);
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Put(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Delete(const std::string& path);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::cli
