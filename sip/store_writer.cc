#include "sip/store_writer.h"

#include "node/core/log.h"

namespace pbx::sip {

StoreWriter::StoreWriter(store::StateStore& store) : store_(store) {
  thread_ = std::thread([this] { ThreadMain(); });
}

StoreWriter::~StoreWriter() { Stop(); }

void StoreWriter::Submit(store::WriteSet writes, store::Durability durability, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::move(writes), durability, std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  if (done) done(Status::Unavailable("SIP store writer stopped"));
}

void StoreWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t StoreWriter::commits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return commits_;
}

void StoreWriter::ThreadMain() {
  std::vector<Item> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything committed
      batch.swap(queue_);
    }
    store::WriteSet merged;
    store::Durability durability = store::Durability::kAsync;
    for (Item& item : batch) {
      for (const store::WriteSet::Op& op : item.writes.ops()) {
        if (op.kind == store::WriteSet::Op::Kind::kPut) {
          merged.Put(op.table, op.key, op.value);
        } else if (op.kind == store::WriteSet::Op::Kind::kDelete) {
          merged.Delete(op.table, op.key);
        }
      }
      if (item.durability == store::Durability::kReplicated) durability = item.durability;
    }
    Status s = merged.empty() ? Status::Ok() : store_.Commit(merged, durability).status();
    if (!s.ok())
      PBX_LOG(kWarn, "sip", "commit of {} writes failed: {}", merged.ops().size(), s.ToString());
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++commits_;
    }
    for (Item& item : batch) {
      if (item.done) item.done(s);
    }
    batch.clear();
  }
}

}  // namespace pbx::sip
