#include "sip/calls/forwarding.h"

#include "node/core/log.h"

namespace pbx::sip {

Status ForwardingDirectory::Init() {
  // Subscribe first, then load: a change in between is applied twice, never lost. The table
  // is one small record per extension, so any change reloads it whole.
  subscriptions_.push_back(
      store_.Subscribe(store::Table::kConfig, store::ForwardingRepo::Prefix(),
                       [this](const store::Change&) { stack_.Post([this] { Reload(); }); }));
  Reload();
  return Status::Ok();
}

void ForwardingDirectory::Unsubscribe() {
  for (auto& s : subscriptions_) s.Reset();
  subscriptions_.clear();
}

const store::Forwarding* ForwardingDirectory::Find(const std::string& extension) const {
  auto it = settings_.find(extension);
  return it == settings_.end() ? nullptr : &it->second;
}

void ForwardingDirectory::Reload() {
  Result<std::vector<store::Forwarding>> all = store::ForwardingRepo(store_).List();
  if (!all.ok()) {
    PBX_LOG(kError, "calls", "cannot load the forwarding settings: {}", all.status().message());
    return;
  }
  settings_.clear();
  for (store::Forwarding& f : *all) settings_[f.extension] = std::move(f);
}

}  // namespace pbx::sip
