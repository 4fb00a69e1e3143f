#include "sip/sip_service.h"

#include "media/rtp/relay.h"
#include "node/core/log.h"
#include "sip/calls/b2bua.h"
#include "sip/registrar/registrar.h"
#include "sip/stack.h"
#include "sip/store_writer.h"
#include "sip/trunk/trunk_client.h"

namespace pbx::sip {
namespace {

class SipServiceImpl : public SipService {
 public:
  SipServiceImpl(store::StateStore& store, std::function<bool()> serving)
      : store_(store), serving_(std::move(serving)) {}
  ~SipServiceImpl() override { Stop(); }

  Status Init(const SipOptions& o) {
    StackOptions so;
    so.listen = o.listen;
    so.vip = o.vip;
    so.udp_port = o.udp_port;
    so.tcp_port = o.tcp_port;
    so.tls_port = o.tls_port;
    so.tls_dir = o.tls_dir;
    PBX_ASSIGN_OR_RETURN(stack_, Stack::Start(so));
    writer_ = std::make_unique<StoreWriter>(store_);
    registrar_ = std::make_unique<Registrar>(*stack_, store_, *writer_, serving_, o.digest_sha256);
    media::RelayConfig rc;
    rc.bind_address = o.media_address;
    rc.port_min = o.rtp_port_min;
    rc.port_max = o.rtp_port_max;
    PBX_ASSIGN_OR_RETURN(relay_, media::RtpRelay::Create(rc));
    CallOptions co;
    co.address = o.media_address;
    co.sip_port = stack_->ports().udp;
    co.serving = serving_;
    pair_member_ = o.pair_member;
    calls_ = std::make_unique<B2bua>(*stack_, *registrar_, store_, *writer_, *relay_, co);
    trunks_ = std::make_unique<TrunkClient>(*stack_, store_, *writer_, serving_,
                                            o.trunk_takeover_window_ms);
    trunks_->set_contact(co.address);  // where the B2BUA's calls are
    Status s;
    stack_->Run([&] {
      s = registrar_->Init();
      if (s.ok()) s = calls_->Init();
      if (s.ok()) s = trunks_->Init();
    });
    return s;
  }

  std::vector<CallSummary> Calls() override {
    std::vector<CallSummary> out;
    if (!stopped_) stack_->Run([&] { out = calls_->List(); });
    return out;
  }

  size_t AdoptCalls() override {
    size_t n = 0;
    if (!stopped_) stack_->Run([&] { n = calls_->AdoptStored(); });
    return n;
  }

  media::RelayTotals relay_totals() const override {
    return relay_ ? relay_->Totals() : media::RelayTotals{};
  }

  SipPorts ports() const override {
    BoundPorts p = stack_->ports();
    return {p.udp, p.tcp, p.tls};
  }

  void Stop() override {
    if (stopped_ || !stack_) return;
    stopped_ = true;
    registrar_->Unsubscribe();
    trunks_->Unsubscribe();
    writer_->Stop();  // what it finishes posts replies to the loop, which still runs
    stack_->Run([this] {
      trunks_->Shutdown();
      calls_->Shutdown(!pair_member_);
      registrar_->Shutdown();
    });
    stack_->Stop();
    trunks_.reset();
    calls_.reset();
    relay_.reset();
    registrar_.reset();
    writer_.reset();
    stack_.reset();
  }

 private:
  store::StateStore& store_;
  std::function<bool()> serving_;
  std::unique_ptr<Stack> stack_;
  std::unique_ptr<StoreWriter> writer_;
  std::unique_ptr<Registrar> registrar_;
  std::unique_ptr<TrunkClient> trunks_;
  std::unique_ptr<media::RtpRelay> relay_;
  std::unique_ptr<B2bua> calls_;
  bool pair_member_ = false;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<SipService>> SipService::Start(const SipOptions& options,
                                                      store::StateStore& store,
                                                      std::function<bool()> serving) {
  auto service = std::make_unique<SipServiceImpl>(store, std::move(serving));
  PBX_TRY(service->Init(options));
  return std::unique_ptr<SipService>(std::move(service));
}

}  // namespace pbx::sip
