#include "sip/store_feed.h"

#include <memory>

namespace pbx::sip {

void StoreFeed::Follow(store::Table table, std::string prefix, OnChange on_change) {
  // Shared: every posted closure needs it, and the subscription may outlive none of them.
  auto fn = std::make_shared<OnChange>(std::move(on_change));
  subscriptions_.push_back(
      store_.Subscribe(table, std::move(prefix),
                       [this, fn](const store::Change& c) { stack_.Post([fn, c] { (*fn)(c); }); }));
}

void StoreFeed::Stop() {
  for (auto& s : subscriptions_) s.Reset();
  subscriptions_.clear();
}

}  // namespace pbx::sip
