#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "replication/store/state_store.h"

namespace pbx::store {

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/pbx_store_test.XXXXXX";
    char* p = mkdtemp(tmpl.data());
    if (p == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Opens the stores that every StateStore semantics test runs against.
struct MemStoreFactory {
  static constexpr bool kPersistent = false;
  std::unique_ptr<StateStore> Open() { return NewMemStateStore(); }
};

struct RocksStoreFactory {
  static constexpr bool kPersistent = true;
  TempDir dir;
  std::unique_ptr<StateStore> Open() {
    auto store = OpenRocksStateStore(StoreOptions{.dir = dir.Sub("db")});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
};

}  // namespace pbx::store
