#include "sip/sip_service.h"

#include "node/core/log.h"
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
    trunks_ = std::make_unique<TrunkClient>(*stack_, store_, *writer_, serving_);
    Status s;
    stack_->Run([&] {
      s = registrar_->Init();
      if (s.ok()) s = trunks_->Init();
    });
    return s;
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
      registrar_->Shutdown();
      trunks_->Shutdown();
    });
    stack_->Stop();
    trunks_.reset();
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
