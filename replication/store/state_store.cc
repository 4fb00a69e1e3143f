#include "replication/store/state_store.h"

namespace pbx::store {

std::string_view TableName(Table table) {
  // These are also the column-family names on disk: never rename one.
  switch (table) {
    case Table::kConfig:
      return "config";
    case Table::kRuntime:
      return "runtime";
    case Table::kRecords:
      return "records";
    case Table::kBlobs:
      return "blobs";
    case Table::kMeta:
      return "meta";
  }
  return "unknown";
}

}  // namespace pbx::store
