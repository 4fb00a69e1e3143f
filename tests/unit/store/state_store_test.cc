// StateStore semantics, run against both MemStateStore and RocksStateStore.

#include "replication/store/state_store.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/store/store_test_util.h"

namespace pbx::store {
namespace {

template <typename Factory>
class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = factory_.Open();
    ASSERT_NE(store_, nullptr);
    base_ = store_->LatestSeq();
  }

  SeqNo Put(Table table, const std::string& key, const std::string& value) {
    WriteSet w;
    w.Put(table, key, value);
    auto seq = store_->Commit(w, Durability::kAsync);
    EXPECT_TRUE(seq.ok()) << seq.status().ToString();
    return seq.ok() ? *seq : 0;
  }

  Factory factory_;
  std::unique_ptr<StateStore> store_;
  SeqNo base_ = 0;  // a new Rocks DB starts at seq 1: its column-family map
};

using Factories = ::testing::Types<MemStoreFactory, RocksStoreFactory>;
class FactoryNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, MemStoreFactory> ? "Mem" : "Rocks";
  }
};
TYPED_TEST_SUITE(StateStoreTest, Factories, FactoryNames);

TYPED_TEST(StateStoreTest, PutGetDeleteInEveryTable) {
  auto& store = *this->store_;
  for (Table table : kAllTables) {
    std::string key = "k/" + std::string(TableName(table));
    this->Put(table, key, "v1");
    auto got = store.Get(table, key);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, "v1");
    this->Put(table, key, "v2");
    EXPECT_EQ(*store.Get(table, key), "v2");

    WriteSet del;
    del.Delete(table, key);
    ASSERT_TRUE(store.Commit(del, Durability::kReplicated).ok());
    auto gone = store.Get(table, key);
    ASSERT_FALSE(gone.ok());
    EXPECT_EQ(gone.status().code(), Status::Code::kNotFound);
    EXPECT_NE(gone.status().message().find(std::string(TableName(table)) + "/" + key),
              std::string::npos)
        << gone.status().message();
  }
}

TYPED_TEST(StateStoreTest, TablesAreSeparate) {
  this->Put(Table::kConfig, "same", "config");
  this->Put(Table::kRuntime, "same", "runtime");
  EXPECT_EQ(*this->store_->Get(Table::kConfig, "same"), "config");
  EXPECT_EQ(*this->store_->Get(Table::kRuntime, "same"), "runtime");
  EXPECT_TRUE(this->store_->Get(Table::kRecords, "same").status().IsNotFound());
}

TYPED_TEST(StateStoreTest, BinaryKeysAndValues) {
  std::string key("b\0\xff", 3);
  std::string value("\0\1\2\xff", 4);
  this->Put(Table::kBlobs, key, value);
  EXPECT_EQ(*this->store_->Get(Table::kBlobs, key), value);
}

TYPED_TEST(StateStoreTest, EmptyWriteSetIsInvalidArgument) {
  auto seq = this->store_->Commit(WriteSet(), Durability::kAsync);
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(this->store_->LatestSeq(), this->base_);
}

TYPED_TEST(StateStoreTest, SequenceNumbersCountOps) {
  auto& store = *this->store_;
  WriteSet w;
  w.Put(Table::kConfig, "a", "1");
  w.Put(Table::kRuntime, "b", "2");
  w.Delete(Table::kRecords, "c");
  auto seq = store.Commit(w, Durability::kReplicated);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, this->base_ + 3);  // the seq of the last op
  EXPECT_EQ(store.LatestSeq(), this->base_ + 3);
  EXPECT_EQ(this->Put(Table::kConfig, "d", "4"), this->base_ + 4);

  // Preconditions alone write nothing and take no sequence number.
  WriteSet check;
  check.ExpectPresent(Table::kConfig, "a");
  auto same = store.Commit(check, Durability::kAsync);
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(*same, this->base_ + 4);
  EXPECT_EQ(store.LatestSeq(), this->base_ + 4);
}

TYPED_TEST(StateStoreTest, CommitIsAllOrNothingAcrossTables) {
  auto& store = *this->store_;
  this->Put(Table::kConfig, "ext/100", "exists");
  const SeqNo before = store.LatestSeq();
  std::vector<Change> seen;
  Subscription sub =
      store.Subscribe(Table::kRuntime, "", [&](const Change& c) { seen.push_back(c); });

  WriteSet w;
  w.Put(Table::kRuntime, "reg/100", "r");
  w.Put(Table::kRecords, "cdr/1", "c");
  w.Delete(Table::kConfig, "ext/100");
  w.ExpectAbsent(Table::kConfig, "ext/100");  // fails
  auto seq = store.Commit(w, Durability::kReplicated);
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), Status::Code::kConflict);
  EXPECT_NE(seq.status().message().find("config/ext/100"), std::string::npos);
  EXPECT_TRUE(store.Get(Table::kRuntime, "reg/100").status().IsNotFound());
  EXPECT_TRUE(store.Get(Table::kRecords, "cdr/1").status().IsNotFound());
  EXPECT_EQ(*store.Get(Table::kConfig, "ext/100"), "exists");
  EXPECT_EQ(store.LatestSeq(), before);

  WriteSet w2;
  w2.Put(Table::kRuntime, "reg/100", "r");
  w2.ExpectPresent(Table::kBlobs, "vm/100");  // fails
  seq = store.Commit(w2, Durability::kAsync);
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), Status::Code::kConflict);
  EXPECT_NE(seq.status().message().find("blobs/vm/100"), std::string::npos);
  EXPECT_TRUE(store.Get(Table::kRuntime, "reg/100").status().IsNotFound());
  EXPECT_TRUE(seen.empty());

  // The same batch with its preconditions holding lands whole.
  WriteSet w3;
  w3.ExpectPresent(Table::kConfig, "ext/100");
  w3.ExpectAbsent(Table::kRuntime, "reg/100");
  w3.Put(Table::kRuntime, "reg/100", "r");
  w3.Put(Table::kRecords, "cdr/1", "c");
  w3.Delete(Table::kConfig, "ext/100");
  seq = store.Commit(w3, Durability::kReplicated);
  ASSERT_TRUE(seq.ok()) << seq.status().ToString();
  EXPECT_EQ(*seq, before + 3);
  EXPECT_EQ(*store.Get(Table::kRuntime, "reg/100"), "r");
  EXPECT_EQ(*store.Get(Table::kRecords, "cdr/1"), "c");
  EXPECT_TRUE(store.Get(Table::kConfig, "ext/100").status().IsNotFound());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].seq, before + 1);
}

TYPED_TEST(StateStoreTest, ScanIsInKeyOrderWithPrefixAndLimit) {
  auto& store = *this->store_;
  WriteSet w;
  for (const char* key :
       {"ext/300", "ext/1000", "ext/200", "ext/", "exs", "ext0", "f", "ext/201"}) {
    w.Put(Table::kConfig, key, std::string("v:") + key);
  }
  w.Put(Table::kRuntime, "ext/999", "other table");
  w.Put(Table::kConfig, std::string("\xff\xff", 2), "ff");
  w.Put(Table::kConfig, std::string("\xff\xff\x01", 3), "ff01");
  ASSERT_TRUE(store.Commit(w, Durability::kAsync).ok());

  auto rows = store.Scan(Table::kConfig, "ext/");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  std::vector<std::string> keys;
  for (const auto& [k, v] : *rows) {
    keys.push_back(k);
    EXPECT_EQ(v, "v:" + k);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"ext/", "ext/1000", "ext/200", "ext/201", "ext/300"}));

  auto limited = store.Scan(Table::kConfig, "ext/", 2);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->size(), 2u);
  EXPECT_EQ((*limited)[0].first, "ext/");
  EXPECT_EQ((*limited)[1].first, "ext/1000");

  auto all = store.Scan(Table::kConfig, "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 10u);
  EXPECT_TRUE(std::is_sorted(all->begin(), all->end()));

  auto ff = store.Scan(Table::kConfig, std::string("\xff\xff", 2));
  ASSERT_TRUE(ff.ok());
  ASSERT_EQ(ff->size(), 2u);
  EXPECT_EQ((*ff)[1].second, "ff01");

  auto none = store.Scan(Table::kConfig, "zzz");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TYPED_TEST(StateStoreTest, ChangesCarryTheirOwnSeqAndValue) {
  auto& store = *this->store_;
  std::vector<Change> seen;
  Subscription sub =
      store.Subscribe(Table::kConfig, "", [&](const Change& c) { seen.push_back(c); });
  WriteSet w;
  w.Put(Table::kConfig, "a", "1");
  w.Put(Table::kRuntime, "skip", "x");
  w.Delete(Table::kConfig, "b");
  auto seq = store.Commit(w, Durability::kAsync);
  ASSERT_TRUE(seq.ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].seq, *seq - 2);
  EXPECT_EQ(seen[0].table, Table::kConfig);
  EXPECT_EQ(seen[0].key, "a");
  EXPECT_EQ(seen[0].value, std::optional<std::string>("1"));
  EXPECT_EQ(seen[1].seq, *seq);
  EXPECT_EQ(seen[1].key, "b");
  EXPECT_FALSE(seen[1].value.has_value());
}

// Several threads commit at once; every subscriber sees its changes in commit order, and
// exactly those matching its table and prefix.
TYPED_TEST(StateStoreTest, ChangeFeedIsInCommitOrderAcrossThreads) {
  auto& store = *this->store_;
  constexpr int kThreads = 4;
  constexpr int kCommitsPerThread = 50;

  std::mutex mu;
  std::map<std::string, SeqNo> committed;  // key -> seq of its write, from Commit()
  std::vector<Change> a_changes, all_changes, runtime_changes;
  Subscription a_sub =
      store.Subscribe(Table::kConfig, "a/", [&](const Change& c) { a_changes.push_back(c); });
  Subscription all_sub =
      store.Subscribe(Table::kConfig, "", [&](const Change& c) { all_changes.push_back(c); });
  Subscription rt_sub =
      store.Subscribe(Table::kRuntime, "", [&](const Change& c) { runtime_changes.push_back(c); });

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommitsPerThread; ++i) {
        std::string suffix = std::to_string(t) + "/" + std::to_string(i);
        WriteSet w;
        w.Put(Table::kConfig, "a/" + suffix, "x");
        w.Put(Table::kConfig, "b/" + suffix, "y");
        auto seq = store.Commit(w, i % 2 ? Durability::kAsync : Durability::kReplicated);
        ASSERT_TRUE(seq.ok()) << seq.status().ToString();
        std::lock_guard<std::mutex> lock(mu);
        committed["a/" + suffix] = *seq - 1;
        committed["b/" + suffix] = *seq;
      }
    });
  }
  for (auto& t : threads) t.join();

  constexpr size_t kTotal = kThreads * kCommitsPerThread;
  ASSERT_EQ(a_changes.size(), kTotal);
  ASSERT_EQ(all_changes.size(), 2 * kTotal);
  EXPECT_TRUE(runtime_changes.empty());
  for (size_t i = 0; i < a_changes.size(); ++i) {
    EXPECT_TRUE(a_changes[i].key.starts_with("a/"));
    EXPECT_EQ(a_changes[i].seq, committed[a_changes[i].key]);
    if (i > 0) {
      EXPECT_LT(a_changes[i - 1].seq, a_changes[i].seq);
    }
  }
  for (size_t i = 0; i < all_changes.size(); ++i) {
    EXPECT_EQ(all_changes[i].seq, this->base_ + 1 + i);  // no gaps, no reordering
    EXPECT_EQ(all_changes[i].seq, committed[all_changes[i].key]);
  }
  EXPECT_EQ(store.LatestSeq(), this->base_ + 2 * kTotal);
}

TYPED_TEST(StateStoreTest, UnsubscribeStopsDelivery) {
  auto& store = *this->store_;
  int calls = 0;
  Subscription sub = store.Subscribe(Table::kConfig, "x", [&](const Change&) { ++calls; });
  this->Put(Table::kConfig, "x1", "v");
  EXPECT_EQ(calls, 1);
  sub.Reset();
  this->Put(Table::kConfig, "x2", "v");
  EXPECT_EQ(calls, 1);

  // Moving a subscription keeps it alive; destroying the moved-to one cancels it.
  {
    Subscription moved;
    {
      Subscription original = store.Subscribe(Table::kConfig, "x", [&](const Change&) { ++calls; });
      moved = std::move(original);
    }
    this->Put(Table::kConfig, "x3", "v");
    EXPECT_EQ(calls, 2);
  }
  this->Put(Table::kConfig, "x4", "v");
  EXPECT_EQ(calls, 2);
}

TYPED_TEST(StateStoreTest, CancelAndSubscribeFromInsideACallback) {
  auto& store = *this->store_;
  std::optional<Subscription> self;
  std::optional<Subscription> added;
  int self_calls = 0, added_calls = 0;
  self = store.Subscribe(Table::kConfig, "", [&](const Change&) {
    ++self_calls;
    self.reset();  // cancels the running subscription: no deadlock, no more calls
    added = store.Subscribe(Table::kConfig, "", [&](const Change&) { ++added_calls; });
  });
  WriteSet w;
  w.Put(Table::kConfig, "k1", "v");
  w.Put(Table::kConfig, "k2", "v");  // same batch: already cancelled
  ASSERT_TRUE(store.Commit(w, Durability::kAsync).ok());
  EXPECT_EQ(self_calls, 1);
  EXPECT_EQ(added_calls, 0);  // subscribed mid-batch: sees later commits only
  this->Put(Table::kConfig, "k3", "v");
  EXPECT_EQ(self_calls, 1);
  EXPECT_EQ(added_calls, 1);
}

TYPED_TEST(StateStoreTest, CancelFromAnotherThreadWaitsForRunningCallback) {
  auto& store = *this->store_;
  std::atomic<bool> in_callback{false};
  std::atomic<bool> release{false};
  std::atomic<bool> callback_done{false};
  Subscription sub = store.Subscribe(Table::kConfig, "", [&](const Change&) {
    in_callback = true;
    while (!release) std::this_thread::yield();
    callback_done = true;
  });
  std::atomic<bool> cancelling{false};
  std::thread committer([&] { this->Put(Table::kConfig, "k", "v"); });
  while (!in_callback) std::this_thread::yield();
  std::thread canceller([&] {
    cancelling = true;
    sub.Reset();
    // Reset returned: the callback must have finished.
    EXPECT_TRUE(callback_done.load());
  });
  while (!cancelling) std::this_thread::yield();
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();  // let Reset reach its wait
  release = true;
  canceller.join();
  committer.join();
}

TYPED_TEST(StateStoreTest, SubscriptionMayOutliveTheStore) {
  Subscription sub = this->store_->Subscribe(Table::kConfig, "", [](const Change&) {});
  this->store_.reset();
  sub.Reset();
}

TYPED_TEST(StateStoreTest, PersistsAcrossReopen) {
  if (!TypeParam::kPersistent) GTEST_SKIP() << "in-memory store";
  this->Put(Table::kConfig, "ext/100", "a");
  WriteSet w;
  w.Put(Table::kBlobs, "vm/100/1", std::string(200 * 1024, 'v'));
  w.Put(Table::kRuntime, "reg/100", "b");
  ASSERT_TRUE(this->store_->Commit(w, Durability::kAsync).ok());  // synced at close
  const SeqNo seq = this->store_->LatestSeq();
  this->store_.reset();

  this->store_ = this->factory_.Open();
  ASSERT_NE(this->store_, nullptr);
  EXPECT_EQ(this->store_->LatestSeq(), seq);
  EXPECT_EQ(*this->store_->Get(Table::kConfig, "ext/100"), "a");
  EXPECT_EQ(this->store_->Get(Table::kBlobs, "vm/100/1")->size(), 200u * 1024);
  EXPECT_EQ(*this->store_->Get(Table::kRuntime, "reg/100"), "b");
  EXPECT_EQ(this->Put(Table::kConfig, "ext/101", "c"), seq + 1);
}

}  // namespace
}  // namespace pbx::store
