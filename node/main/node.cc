#include "node/main/node.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/stat.h>

#include "node/admin/api_server.h"
#include "node/admin/credentials.h"
#include "node/admin/first_boot.h"
#include "node/core/daemon.h"
#include "node/core/log.h"
#include "node/main/cluster_controller.h"
#include "node/main/write_gate.h"
#include "replication/store/repos.h"
#include "replication/store/state_store.h"
#include "replication/store/wal.h"
#include "sip/sip_service.h"

namespace pbx::node {
namespace {

namespace fs = std::filesystem;

// The source address of this host's default route (a UDP connect sends nothing), for the
// SDP when SIP listens on every address; 127.0.0.1 without a route.
std::string PrimaryAddress() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "127.0.0.1";
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(9);
  inet_pton(AF_INET, "192.0.2.1", &to.sin_addr);  // TEST-NET-1: never contacted
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  std::string out = "127.0.0.1";
  char text[INET_ADDRSTRLEN];
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
      inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text))) {
    out = text;
  }
  ::close(fd);
  return out;
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status MakeDir(const fs::path& dir, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Io(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  fs::permissions(dir, perms, ec);
  return Status::Ok();
}

// The cluster's identity, created once with the store. Both nodes of a pair share it
// because the meta table replicates.
Status EnsureClusterMeta(store::StateStore& state) {
  store::MetaRepo meta(state);
  Result<store::ClusterMeta> existing = meta.Get();
  if (existing.ok()) return Status::Ok();
  if (!existing.status().IsNotFound()) return existing.status();
  std::random_device rd;
  store::ClusterMeta m;
  m.cluster_id = fmt::format("{:08x}{:08x}", rd(), rd());
  m.created_unix = NowUnix();
  store::WriteSet writes;
  meta.Put(m, writes);
  return state.Commit(writes, store::Durability::kReplicated).status();
}

class NodeImpl : public Node {
 public:
  explicit NodeImpl(const BootstrapConfig& config) : config_(config) {}
  ~NodeImpl() override { Stop(); }

  Status Init() {
    started_unix_ = NowUnix();
    fs::path data(config_.data_dir);
    run_dir_ = fs::absolute(config_.run_dir);
    PBX_TRY(MakeDir(data, fs::perms::owner_all));
    PBX_TRY(MakeDir(run_dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec));

    PBX_ASSIGN_OR_RETURN(local_, store::OpenLocalStore((data / "local").string()));
    store::StoreOptions opts;
    opts.dir = (data / "state").string();
    opts.wal_ttl_seconds = config_.wal_ttl_seconds;
    opts.wal_size_limit_mb = config_.wal_size_limit_mb;
    PBX_ASSIGN_OR_RETURN(state_, store::OpenReplicatedDb(opts));
    PBX_LOG(kInfo, "node", "store open at {} seq={}", opts.dir, state_->LatestSeq());
    gate_ = std::make_unique<WriteGate>(*state_);

    PBX_TRY(StartApi(data / "tls"));
    PBX_TRY(StartSip(data / "tls"));
    // admin.token needs the replicated token secret, which a new standby only gets from
    // its active: write it whenever the settings change.
    settings_sub_ = state_->Subscribe(store::Table::kConfig, "settings/",
                                      [this](const store::Change&) { WriteAdminToken(); });

    if (!config_.cluster) {
      gate_->Open();
      PBX_TRY(ProvisionOnce());
      AdoptCalls();  // calls a crash left behind, if their phones are still there
    } else {
      PBX_ASSIGN_OR_RETURN(cluster_, ClusterController::Start(config_, *state_, *local_, *gate_,
                                                              [this] { OnServing(); }));
      gate_->SetLicense([c = cluster_.get()] { return c->Serving(); });
      cluster_ready_.store(true);
    }
    WriteAdminToken();
    // Last: whoever waits for ready.json finds everything else in place.
    return WriteReadyFile();
  }

  void Stop() override {
    if (stopped_) return;
    stopped_ = true;
    std::error_code ec;
    fs::remove(run_dir_ / "ready.json", ec);
    fs::remove(run_dir_ / "admin.token", ec);
    {
      std::lock_guard<std::mutex> lock(sip_mu_);
      if (sip_) sip_->Stop();
      sip_.reset();
    }
    if (cluster_) cluster_->Stop();
    if (api_) api_->Stop();
    api_.reset();
    settings_sub_.Reset();
    cluster_.reset();
    gate_.reset();
    state_.reset();  // flushes and closes the DB
    local_.reset();
  }

 private:
  // The cluster identity and the first-boot accounts are created by the node that serves
  // first; a standby receives them through replication.
  Status ProvisionOnce() {
    PBX_TRY(EnsureClusterMeta(*gate_));
    admin::FirstBootOptions boot;
    boot.admin_password = config_.admin_password.value_or("");
    boot.demo_extensions = config_.demo_extensions;
    PBX_ASSIGN_OR_RETURN(admin::FirstBootReport report, admin::ProvisionFirstBoot(*gate_, boot));
    PrintFirstBootReport(report);
    return Status::Ok();
  }

  // On the cluster controller's hook thread, each time this node starts serving.
  void OnServing() {
    AdoptCalls();  // first: every millisecond here is silence on a call
    if (Status s = ProvisionOnce(); !s.ok()) {
      PBX_LOG(kError, "node", "first-boot provisioning failed: {}", s.ToString());
    }
  }

  void AdoptCalls() {
    std::lock_guard<std::mutex> lock(sip_mu_);
    if (sip_) sip_->AdoptCalls();
  }

  void WriteAdminToken() {
    Result<std::string> token = admin::MintTokenForUser(*state_, "admin", 30 * 24 * 3600);
    if (!token.ok()) return;  // not provisioned yet
    std::lock_guard<std::mutex> lock(token_mu_);
    if (Status s =
            daemon::WriteFileAtomically((run_dir_ / "admin.token").string(), *token + "\n", 0600);
        !s.ok()) {
      PBX_LOG(kWarn, "node", "{}", s.ToString());
    }
  }

  // The clear passwords go to stdout once, never to the log.
  static void PrintFirstBootReport(const admin::FirstBootReport& report) {
    if (report.admin_password.empty() && report.extensions.empty()) return;
    std::string out = "\nFirst boot: these passwords are shown once; write them down.\n";
    if (!report.admin_password.empty()) {
      out += fmt::format("  web/API user  admin  password  {}\n", report.admin_password);
    }
    for (const auto& ext : report.extensions) {
      out += fmt::format("  extension     {}   password  {}\n", ext.number, ext.password);
    }
    std::fputs(out.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  Status StartApi(const fs::path& tls_dir) {
    PBX_TRY(MakeDir(tls_dir, fs::perms::owner_all));
    cert_file_ = fs::absolute(tls_dir / "api-cert.pem");
    fs::path key_file = fs::absolute(tls_dir / "api-key.pem");
    if (!fs::exists(cert_file_) || !fs::exists(key_file)) {
      std::vector<std::string> sans;
      if (config_.api_listen != "127.0.0.1" && config_.api_listen != "0.0.0.0") {
        sans.push_back(config_.api_listen);
      }
      PBX_TRY(admin::GenerateSelfSignedCert(cert_file_.string(), key_file.string(),
                                            config_.node_name, sans));
      PBX_LOG(kInfo, "node", "generated a self-signed certificate at {}", cert_file_.string());
    }
    admin::ApiOptions api;
    api.bind_address = config_.api_listen;
    api.port = config_.api_port;
    api.cert_file = cert_file_.string();
    api.key_file = key_file.string();
    api.web_dir = config_.web_dir.empty() ? admin::DefaultWebDir() : config_.web_dir;
    if (config_.http_port != 0) api.http_port = config_.http_port;
    api.calls = [this] {
      admin::CallsSnapshot snap;
      std::lock_guard<std::mutex> lock(sip_mu_);  // SIP starts after, and stops before, the API
      if (sip_) {
        snap.calls = sip_->Calls();
        snap.relay = sip_->relay_totals();
      }
      return snap;
    };
    admin::ClusterOps ops;
    if (config_.cluster) {
      // cluster_ is created after the API: requests before then are answered Unavailable.
      ops.switchover = [this]() -> Status {
        if (!cluster_ready_.load()) return Status::Unavailable("the node is starting");
        return cluster_->Switchover();
      };
      ops.maintenance = [this](bool on, bool force) -> Status {
        if (!cluster_ready_.load()) return Status::Unavailable("the node is starting");
        return cluster_->Maintenance(on, force);
      };
    }
    PBX_ASSIGN_OR_RETURN(api_, admin::ApiServer::Start(
                                   api, *gate_, [this] { return CurrentStatus(); }, ops));
    PBX_LOG(kInfo, "node", "REST API on https://{}:{}", config_.api_listen, api_->port());
    return Status::Ok();
  }

  // SIP runs on every node; only the one that serves answers (a standby keeps its sockets,
  // the VIP's included, and stays silent). TLS reuses the node's certificate.
  Status StartSip(const fs::path& tls_dir) {
    fs::path sip_tls = tls_dir / "sip";
    PBX_TRY(MakeDir(sip_tls, fs::perms::owner_all));
    if (!fs::exists(sip_tls / "agent.pem")) {
      std::ifstream key(tls_dir / "api-key.pem"), cert(cert_file_);
      std::string k((std::istreambuf_iterator<char>(key)), {});
      std::string c((std::istreambuf_iterator<char>(cert)), {});
      PBX_TRY(daemon::WriteFileAtomically((sip_tls / "agent.pem").string(), k + c, 0600));
      PBX_TRY(daemon::WriteFileAtomically((sip_tls / "cafile.pem").string(), c, 0644));
    }
    sip::SipOptions o;
    o.listen = config_.sip_listen;
    o.udp_port = config_.sip_udp_port;
    o.tcp_port = config_.sip_tcp_port;
    o.tls_port = config_.sip_tls_port;
    o.tls_dir = fs::absolute(sip_tls).string();
    o.digest_sha256 = config_.sip_digest_sha256;
    if (config_.cluster && config_.cluster->vip) o.vip = config_.cluster->vip->address;
    o.media_address = config_.media_address;
    if (o.media_address.empty()) o.media_address = !o.vip.empty() ? o.vip : o.listen;
    if (o.media_address == "0.0.0.0") o.media_address = PrimaryAddress();
    o.rtp_port_min = config_.rtp_port_min;
    o.rtp_port_max = config_.rtp_port_max;
    o.pair_member = config_.cluster.has_value();
    if (config_.cluster) o.trunk_takeover_window_ms = config_.cluster->trunk_reregister_window_ms;
    PBX_ASSIGN_OR_RETURN(auto sip, sip::SipService::Start(o, *gate_, [this] {
                           if (!gate_->is_open()) return false;
                           return !config_.cluster ||
                                  (cluster_ready_.load() && cluster_->Serving());
                         }));
    std::lock_guard<std::mutex> lock(sip_mu_);
    sip_ = std::move(sip);
    return Status::Ok();
  }

  admin::NodeStatus CurrentStatus() const {
    admin::NodeStatus s;
    s.node_name = config_.node_name;
    s.serving = !config_.cluster;  // a pair node serves only once its role machine says so
    if (cluster_ready_.load()) {
      s.role = cluster_->role();
      s.role_reason = cluster_->role_reason();
      s.serving = cluster_->Serving();
      s.cluster = cluster_->Snapshot();
    }
    s.version = PBX_VERSION;
    s.last_seq = state_->LatestSeq();
    s.started_unix = started_unix_;
    if (Result<store::ClusterMeta> meta = store::MetaRepo(*state_).Get(); meta.ok()) {
      s.epoch = meta->epoch;
    }
    return s;
  }

  // ready.json tells clients, and tests, which ports were bound; admin.token lets root on
  // this machine use pbxctl without a password (like a local control socket).
  Status WriteReadyFile() {
    std::string host = config_.api_listen == "0.0.0.0" ? "127.0.0.1" : config_.api_listen;
    nlohmann::json ready = {
        {"pid", ::getpid()},
        {"node", config_.node_name},
        {"api", api_->port()},
        {"api_url", fmt::format("https://{}:{}", host, api_->port())},
        {"api_cert", cert_file_.string()},
        {"sip_udp", sip_->ports().udp},
        {"sip_tcp", sip_->ports().tcp},
        {"sip_tls", sip_->ports().tls},
        {"http", api_->http_port()},
    };
    PBX_TRY(daemon::WriteFileAtomically((run_dir_ / "ready.json").string(), ready.dump(2) + "\n",
                                        0644));
    PBX_LOG(kInfo, "node", "ready: node={} api={}", config_.node_name, api_->port());
    return Status::Ok();
  }

  BootstrapConfig config_;
  fs::path run_dir_;
  fs::path cert_file_;
  int64_t started_unix_ = 0;
  std::unique_ptr<store::LocalStore> local_;
  std::unique_ptr<store::ReplicatedDb> state_;
  std::unique_ptr<WriteGate> gate_;  // what the node's own subsystems write through
  std::unique_ptr<ClusterController> cluster_;
  std::atomic<bool> cluster_ready_{false};  // cluster_ is set (the API may run before)
  std::unique_ptr<admin::ApiServer> api_;
  std::mutex sip_mu_;  // guards sip_ against the API's calls endpoint
  std::unique_ptr<sip::SipService> sip_;
  store::Subscription settings_sub_;
  std::mutex token_mu_;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<Node>> Node::Start(const BootstrapConfig& config) {
  auto node = std::make_unique<NodeImpl>(config);
  PBX_TRY(node->Init());
  return std::unique_ptr<Node>(std::move(node));
}

}  // namespace pbx::node
