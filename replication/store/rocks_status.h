#pragma once

#include <string>

#include <rocksdb/status.h>

#include "node/core/log.h"
#include "node/core/status.h"

namespace pbx::store {

// Maps a non-OK rocksdb::Status to ours; `what` names the table/key or operation.
// Internal to replication/store (it includes RocksDB).
inline Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  std::string msg = what + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(what + " not found");
  if (s.IsCorruption()) return Status::Corruption(std::move(msg));
  if (s.IsIOError()) return Status::Io(std::move(msg));
  return Status::Internal(std::move(msg));
}

}  // namespace pbx::store
