#include "node/main/write_gate.h"

namespace pbx::node {

void WriteGate::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  open_ = true;
}

void WriteGate::Close(std::string why) {
  std::unique_lock<std::mutex> lock(mu_);
  open_ = false;
  why_ = std::move(why);
  idle_.wait(lock, [this] { return in_flight_ == 0; });
}

void WriteGate::SetLicense(std::function<bool()> license) {
  std::lock_guard<std::mutex> lock(mu_);
  license_ = std::move(license);
}

bool WriteGate::is_open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

Result<store::SeqNo> WriteGate::Commit(const store::WriteSet& writes,
                                       store::Durability durability) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) return Status::Unavailable("this node does not accept writes now: " + why_);
    if (license_ && !license_()) {
      return Status::Unavailable("this node's serving license has run out");
    }
    ++in_flight_;
  }
  Result<store::SeqNo> r = store_.Commit(writes, durability);
  std::lock_guard<std::mutex> lock(mu_);
  if (--in_flight_ == 0) idle_.notify_all();
  return r;
}

}  // namespace pbx::node
