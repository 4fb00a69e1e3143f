#include "sip/calls/forwarding.h"

#include "node/core/log.h"

namespace pbx::sip {

Status ForwardingDirectory::Init() {
  // One small record per extension: any change reloads the table whole.
  feed_.Follow(store::Table::kConfig, store::ForwardingRepo::Prefix(),
               [this](const store::Change&) { Reload(); });
  Reload();
  return Status::Ok();
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
