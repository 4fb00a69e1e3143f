#include "node/cli/api_client.h"

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <sys/stat.h>

namespace pbx::cli {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxReadyFileBytes = 64 * 1024;

// Never throws: bytes that are not UTF-8 (from a command line) are replaced, and the API then
// judges the result.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(fmt::format("{} does not exist", path));
    return Status::Io(fmt::format("cannot read {}: {}", path, std::strerror(err)));
  }
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > kMaxReadyFileBytes) {
      return Status::InvalidArgument(fmt::format("{} is too large", path));
    }
  }
  return data;
}

// The Status for an HTTP error reply, with the API's message when it sent one.
Status HttpError(const httplib::Response& res) {
  std::string message = fmt::format("HTTP {}", res.status);
  json body = json::parse(res.body, nullptr, false);
  if (!body.is_discarded() && body.is_object()) {
    auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
      auto m = error->find("message");
      if (m != error->end() && m->is_string()) message = m->get<std::string>();
    }
  }
  switch (res.status) {
    case 400:
      return Status::InvalidArgument(message);
    case 401:
      return Status::Unauthenticated(message);
    case 403:
      return Status::PermissionDenied(message);
    case 404:
      return Status::NotFound(message);
    case 409:
      return Status::Conflict(message);
    default:
      return Status::Internal(message);
  }
}

}  // namespace

std::string DefaultRunDir() {
  const char* env = std::getenv("PBX_RUN_DIR");
  if (env != nullptr && *env != '\0') return env;
  if (IsDirectory(".pbx/run")) return ".pbx/run";
  return "/run/pbx";
}

Result<RunInfo> ReadRunInfo(const std::string& run_dir) {
  const std::string path = run_dir + "/ready.json";
  PBX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  json j = json::parse(text, nullptr, false);
  auto bad = [&](std::string_view what) {
    return Status::InvalidArgument(fmt::format("{}: {}", path, what));
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  RunInfo info;
  auto pid = j.find("pid");
  auto api = j.find("api");
  if (pid == j.end() || !pid->is_number_integer() || pid->get<int64_t>() <= 0) {
    return bad("\"pid\" must be a positive integer");
  }
  if (api == j.end() || !api->is_number_integer() || api->get<int64_t>() <= 0 ||
      api->get<int64_t>() > 65535) {
    return bad("\"api\" must be a port number");
  }
  info.pid = pid->get<int64_t>();
  info.api_port = api->get<int>();
  for (auto [key, out] : {std::pair{"node", &info.node}, std::pair{"api_url", &info.api_url},
                          std::pair{"api_cert", &info.api_cert}}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_string()) return bad(fmt::format("\"{}\" must be a string", key));
    *out = it->get<std::string>();
  }
  if (info.api_url.empty()) info.api_url = fmt::format("https://127.0.0.1:{}", info.api_port);
  return info;
}

bool ProcessAlive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

Result<std::string> ReadTokenFile(const std::string& path) {
  PBX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  std::string line = text.substr(0, text.find('\n'));
  const char* kSpace = " \t\r\n";
  size_t begin = line.find_first_not_of(kSpace);
  if (begin == std::string::npos) return Status::InvalidArgument(path + " is empty");
  size_t end = line.find_last_not_of(kSpace);
  return line.substr(begin, end - begin + 1);
}

class ApiClient::Impl {
 public:
  explicit Impl(const ClientOptions& options) : options_(options), http_(options.url) {}

  Status Init() {
    if (!http_.is_valid()) {
      return Status::InvalidArgument(fmt::format("'{}' is not a valid API URL", options_.url));
    }
    const bool https = options_.url.rfind("https://", 0) == 0;
    if (https && !options_.insecure) {
      if (options_.ca_file.empty()) {
        return Status::InvalidArgument("an https URL needs a CA file (--ca) or --insecure");
      }
      if (::access(options_.ca_file.c_str(), R_OK) != 0) {
        return Status::InvalidArgument(
            fmt::format("cannot read CA file {}: {}", options_.ca_file, std::strerror(errno)));
      }
      http_.set_ca_cert_path(options_.ca_file);
      http_.enable_server_certificate_verification(true);
    } else if (https) {
      http_.enable_server_certificate_verification(false);
    }
    http_.set_connection_timeout(options_.timeout_seconds);
    http_.set_read_timeout(options_.timeout_seconds);
    http_.set_write_timeout(options_.timeout_seconds);
    return Status::Ok();
  }

  void set_token(std::string token) { options_.token = std::move(token); }

  // Sends one request and turns the reply (or its absence) into JSON or a Status.
  template <typename Send>
  Result<json> Call(const char* method, const std::string& path, Send&& send) {
    httplib::Headers headers;
    if (!options_.token.empty()) {
      headers.emplace("Authorization", "Bearer " + options_.token);
    }
    httplib::Result res = send(headers);
    if (!res) return TransportError(res.error());
    if (res->status >= 400) return HttpError(*res);
    if (res->status == 204 || res->body.empty()) return json(nullptr);
    json body = json::parse(res->body, nullptr, false);
    if (body.is_discarded()) {
      return Status::Internal(fmt::format("{} {}: the reply is not JSON", method, path));
    }
    return body;
  }

  httplib::Client& http() { return http_; }

 private:
  Status TransportError(httplib::Error error) const {
    switch (error) {
      case httplib::Error::Connection:
      case httplib::Error::ConnectionTimeout:
      case httplib::Error::BindIPAddress:
        return Status::Unavailable(fmt::format("cannot connect to {}", options_.url));
      case httplib::Error::SSLServerVerification:
        return Status::Unauthenticated(
            fmt::format("the certificate of {} does not match {}", options_.url, options_.ca_file));
      default:
        return Status::Io(
            fmt::format("request to {} failed: {}", options_.url, httplib::to_string(error)));
    }
  }

  ClientOptions options_;
  httplib::Client http_;
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::Create(const ClientOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  PBX_TRY(impl->Init());
  return std::make_unique<ApiClient>(std::move(impl));
}

Status ApiClient::Login(const std::string& user, const std::string& password) {
  json body = {{"username", user}, {"password", password}};
  Result<json> reply = impl_->Call("POST", "/api/v1/login", [&](const httplib::Headers& h) {
    return impl_->http().Post("/api/v1/login", h, Dump(body), "application/json");
  });
  if (!reply.ok()) return reply.status();
  auto token = reply->find("token");
  if (!reply->is_object() || token == reply->end() || !token->is_string()) {
    return Status::Internal("the login reply has no token");
  }
  impl_->set_token(token->get<std::string>());
  return Status::Ok();
}

Result<json> ApiClient::Get(const std::string& path) {
  return impl_->Call("GET", path,
                     [&](const httplib::Headers& h) { return impl_->http().Get(path, h); });
}

Result<json> ApiClient::Post(const std::string& path, const json& body) {
  return impl_->Call("POST", path, [&](const httplib::Headers& h) {
    return impl_->http().Post(path, h, Dump(body), "application/json");
  });
}

Result<json> ApiClient::Put(const std::string& path, const json& body) {
  return impl_->Call("PUT", path, [&](const httplib::Headers& h) {
    return impl_->http().Put(path, h, Dump(body), "application/json");
  });
}

Result<json> ApiClient::Delete(const std::string& path) {
  return impl_->Call("DELETE", path,
                     [&](const httplib::Headers& h) { return impl_->http().Delete(path, h); });
}

}  // namespace pbx::cli
