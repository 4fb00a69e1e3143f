// RocksStateStore only: column-family layout checks, WAL shipping, LocalStore.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "replication/schema/records.capnp.h"
#include "replication/store/state_store.h"
#include "replication/store/wal.h"
#include "tests/unit/store/store_test_util.h"

namespace pbx::store {
namespace {

std::unique_ptr<ReplicatedDb> OpenDb(const std::string& dir, uint64_t ttl = 3600,
                                     uint64_t size_mb = 1024) {
  auto db = OpenReplicatedDb(
      StoreOptions{.dir = dir, .wal_ttl_seconds = ttl, .wal_size_limit_mb = size_mb});
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return db.ok() ? std::move(db).value() : nullptr;
}

SeqNo MustCommit(StateStore& store, const WriteSet& w) {
  auto seq = store.Commit(w, Durability::kReplicated);
  EXPECT_TRUE(seq.ok()) << seq.status().ToString();
  return seq.ok() ? *seq : 0;
}

// Every table, key by key.
std::map<std::pair<int, std::string>, std::string> Dump(const StateStore& store) {
  std::map<std::pair<int, std::string>, std::string> out;
  for (Table table : kAllTables) {
    auto rows = store.Scan(table, "");
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok()) continue;
    for (auto& [k, v] : *rows) out[{static_cast<int>(table), k}] = v;
  }
  return out;
}

// Writes `bytes` under meta/cf_map (or elsewhere) with plain RocksDB, as damage would.
void RawPut(const std::string& dir, const std::string& cf, const std::string& key,
            const std::string& bytes) {
  std::vector<std::string> names = {"default", "config", "runtime", "records", "blobs", "meta"};
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir, descriptors, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  size_t i = std::find(names.begin(), names.end(), cf) - names.begin();
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[i], key, bytes).ok());
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
}

TEST(RocksLayoutTest, NewDbStartsAtSeqOneWithItsColumnFamilyMap) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("db"));
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->LatestSeq(), 1u);
  EXPECT_TRUE(db->Get(Table::kMeta, "cf_map").ok());
  db.reset();
  db = OpenDb(dir.Sub("db"));  // verified on reopen, not rewritten
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->LatestSeq(), 1u);
}

TEST(RocksLayoutTest, ColumnFamilyMapIsReserved) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("db"));
  ASSERT_NE(db, nullptr);
  WriteSet w;
  w.Put(Table::kMeta, "cf_map", "mine");
  EXPECT_EQ(db->Commit(w, Durability::kAsync).status().code(), Status::Code::kInvalidArgument);
  WriteSet d;
  d.Delete(Table::kMeta, "cf_map");
  EXPECT_EQ(db->Commit(d, Durability::kAsync).status().code(), Status::Code::kInvalidArgument);
}

TEST(RocksLayoutTest, DamagedColumnFamilyMapIsCorruption) {
  TempDir dir;
  ASSERT_NE(OpenDb(dir.Sub("db")), nullptr);
  RawPut(dir.Sub("db"), "meta", "cf_map", "garbage!");
  auto reopened = OpenReplicatedDb(StoreOptions{.dir = dir.Sub("db")});
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), Status::Code::kCorruption);
  EXPECT_NE(reopened.status().message().find("meta/cf_map"), std::string::npos);
}

TEST(RocksLayoutTest, DifferentColumnFamilyMapIsCorruption) {
  TempDir dir;
  ASSERT_NE(OpenDb(dir.Sub("db")), nullptr);
  // A well-formed map from a node whose ids differ (records and blobs swapped).
  capnp::MallocMessageBuilder message;
  auto entries = message.initRoot<schema::ColumnFamilyMap>().initEntries(6);
  const char* names[] = {"default", "config", "runtime", "blobs", "records", "meta"};
  for (unsigned i = 0; i < 6; ++i) {
    entries[i].setName(names[i]);
    entries[i].setId(i);
  }
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  RawPut(dir.Sub("db"), "meta", "cf_map",
         std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()));
  auto reopened = OpenReplicatedDb(StoreOptions{.dir = dir.Sub("db")});
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), Status::Code::kCorruption);
  EXPECT_NE(reopened.status().message().find("blobs=3"), std::string::npos)
      << reopened.status().message();
}

TEST(RocksLayoutTest, ColumnFamiliesCreatedInAnotherOrderAreCorruption) {
  TempDir dir;
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir.Sub("db"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (const char* name : {"meta", "config", "runtime", "records", "blobs"}) {
    rocksdb::ColumnFamilyHandle* h = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), name, &h).ok());
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  }
  ASSERT_TRUE(db->Close().ok());
  db.reset();

  auto opened = OpenReplicatedDb(StoreOptions{.dir = dir.Sub("db")});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Status::Code::kCorruption);
  EXPECT_NE(opened.status().message().find("column family"), std::string::npos)
      << opened.status().message();
}

TEST(RocksLayoutTest, ExtraColumnFamilyIsCorruption) {
  TempDir dir;
  ASSERT_NE(OpenDb(dir.Sub("db")), nullptr);
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const char* n : {"default", "config", "runtime", "records", "blobs", "meta"}) {
      descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(rocksdb::DBOptions(), dir.Sub("db"), descriptors, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* extra = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "extra", &extra).ok());
    handles.push_back(extra);
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    ASSERT_TRUE(db->Close().ok());
  }
  auto opened = OpenReplicatedDb(StoreOptions{.dir = dir.Sub("db")});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Status::Code::kCorruption);
  EXPECT_NE(opened.status().message().find("extra"), std::string::npos);
}

TEST(RocksLayoutTest, EmptyDirIsInvalidArgument) {
  EXPECT_EQ(OpenRocksStateStore(StoreOptions{}).status().code(), Status::Code::kInvalidArgument);
}

// Writes a varied history: several tables, deletes, a large blob, multi-op batches.
void WriteHistory(StateStore& store, int round) {
  for (int i = 0; i < 20; ++i) {
    std::string n = std::to_string(round) + "/" + std::to_string(i);
    WriteSet w;
    w.Put(Table::kConfig, "ext/" + n, "ext " + n);
    w.Put(Table::kRuntime, "reg/" + n, "reg " + n);
    if (i % 3 == 0) w.Put(Table::kRecords, "cdr/" + n, std::string(100, 'c'));
    if (i % 5 == 0) w.Put(Table::kBlobs, "vm/" + n, std::string(64 * 1024, static_cast<char>(i)));
    if (i > 0)
      w.Delete(Table::kRuntime, "reg/" + std::to_string(round) + "/" + std::to_string(i - 1));
    MustCommit(store, w);
  }
}

// Copies everything `active` has beyond `standby`'s seq, the way the shipper will.
void Ship(const ReplicatedDb& active, ReplicatedDb& standby, size_t max_bytes) {
  for (int rounds = 0; standby.LatestSeq() < active.LatestSeq(); ++rounds) {
    ASSERT_LT(rounds, 10000);
    auto batches = active.ReadWalSince(standby.LatestSeq() + 1, max_bytes);
    ASSERT_TRUE(batches.ok()) << batches.status().ToString();
    ASSERT_FALSE(batches->empty());
    for (const WalBatch& b : *batches) {
      Status s = standby.ApplyWalBatch(b);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }
}

TEST(WalTest, ShippedBatchesMakeAnIdenticalReplica) {
  TempDir dir;
  auto active = OpenDb(dir.Sub("active"));
  auto standby = OpenDb(dir.Sub("standby"));
  ASSERT_NE(active, nullptr);
  ASSERT_NE(standby, nullptr);
  std::vector<Change> standby_changes;
  Subscription sub = standby->Subscribe(Table::kConfig, "ext/",
                                        [&](const Change& c) { standby_changes.push_back(c); });
  std::vector<Change> active_changes;
  Subscription asub = active->Subscribe(Table::kConfig, "ext/",
                                        [&](const Change& c) { active_changes.push_back(c); });

  WriteHistory(*active, 0);
  Ship(*active, *standby, 4096);
  WriteHistory(*active, 1);
  // Reopening flushes the memtables: the next batches come from the archived WAL.
  active.reset();
  active = OpenDb(dir.Sub("active"));
  ASSERT_NE(active, nullptr);
  WriteHistory(*active, 2);
  Ship(*active, *standby, 1);  // one batch per call
  WriteHistory(*active, 3);
  Ship(*active, *standby, 1 << 20);

  EXPECT_EQ(standby->LatestSeq(), active->LatestSeq());
  auto a = Dump(*active);
  auto b = Dump(*standby);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b);
  // The standby's feed saw the same changes with the same numbers (the active's subscriber
  // was lost at its reopen, so compare what it saw before).
  ASSERT_GE(standby_changes.size(), active_changes.size());
  for (size_t i = 0; i < active_changes.size(); ++i) {
    EXPECT_EQ(standby_changes[i].seq, active_changes[i].seq);
    EXPECT_EQ(standby_changes[i].key, active_changes[i].key);
    EXPECT_EQ(standby_changes[i].value, active_changes[i].value);
  }
  EXPECT_EQ(standby_changes.size(), 80u);

  // The replica persists, too.
  const SeqNo seq = standby->LatestSeq();
  standby.reset();
  standby = OpenDb(dir.Sub("standby"));
  ASSERT_NE(standby, nullptr);
  EXPECT_EQ(standby->LatestSeq(), seq);
  EXPECT_TRUE(Dump(*standby) == a);
}

TEST(WalTest, ReadWalSinceBoundaries) {
  TempDir dir;
  auto db = OpenDb(dir.Sub("db"));
  ASSERT_NE(db, nullptr);
  WriteSet w;
  w.Put(Table::kConfig, "a", "1");
  w.Put(Table::kConfig, "b", "2");
  w.Delete(Table::kConfig, "c");
  const SeqNo last = MustCommit(*db, w);  // ops last-2 .. last

  auto past_end = db->ReadWalSince(last + 1, 1 << 20);
  ASSERT_TRUE(past_end.ok());
  EXPECT_TRUE(past_end->empty());

  auto all = db->ReadWalSince(0, 1 << 20);  // 0 reads as 1
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);  // the column-family map, then our batch
  EXPECT_EQ((*all)[0].first_seq, 1u);
  EXPECT_EQ((*all)[0].count, 1u);
  EXPECT_EQ((*all)[1].first_seq, last - 2);
  EXPECT_EQ((*all)[1].count, 3u);

  // Starting inside a batch trims the ops before `from`.
  auto mid = db->ReadWalSince(last - 1, 1 << 20);
  ASSERT_TRUE(mid.ok()) << mid.status().ToString();
  ASSERT_EQ(mid->size(), 1u);
  EXPECT_EQ((*mid)[0].first_seq, last - 1);
  EXPECT_EQ((*mid)[0].count, 2u);
  auto changes = DecodeBatch((*mid)[0].data, (*mid)[0].first_seq);
  ASSERT_TRUE(changes.ok()) << changes.status().ToString();
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_EQ((*changes)[0].key, "b");
  EXPECT_EQ((*changes)[0].seq, last - 1);
  EXPECT_EQ((*changes)[1].key, "c");
  EXPECT_FALSE((*changes)[1].value.has_value());
}

TEST(WalTest, PurgedWalIsNotFound) {
  TempDir dir;
  // No retention: a WAL file goes as soon as its memtable is flushed.
  auto db = OpenDb(dir.Sub("db"), /*ttl=*/0, /*size_mb=*/0);
  ASSERT_NE(db, nullptr);
  WriteHistory(*db, 0);
  db.reset();
  db = OpenDb(dir.Sub("db"), 0, 0);  // recovery flushes, and the old WAL is deleted
  ASSERT_NE(db, nullptr);
  WriteHistory(*db, 1);
  auto r = db->ReadWalSince(2, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find("WAL no longer reaches back to seq 2"), std::string::npos)
      << r.status().message();
}

TEST(WalTest, ApplyRefusesGapsAndDamageAndChangesNothing) {
  TempDir dir;
  auto active = OpenDb(dir.Sub("active"));
  auto standby = OpenDb(dir.Sub("standby"));
  ASSERT_NE(active, nullptr);
  ASSERT_NE(standby, nullptr);
  WriteHistory(*active, 0);
  auto batches = active->ReadWalSince(2, 1 << 20);
  ASSERT_TRUE(batches.ok()) << batches.status().ToString();
  ASSERT_GE(batches->size(), 3u);

  int fed = 0;
  Subscription sub = standby->Subscribe(Table::kConfig, "", [&](const Change&) { ++fed; });
  const auto before = Dump(*standby);
  const SeqNo seq = standby->LatestSeq();
  auto expect_unchanged = [&] {
    EXPECT_EQ(standby->LatestSeq(), seq);
    EXPECT_TRUE(Dump(*standby) == before);
    EXPECT_EQ(fed, 0);
  };

  // A gap: the second batch before the first.
  Status s = standby->ApplyWalBatch((*batches)[1]);
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
  expect_unchanged();

  // Metadata that does not match the bytes.
  WalBatch wrong_count = (*batches)[0];
  wrong_count.count += 1;
  EXPECT_EQ(standby->ApplyWalBatch(wrong_count).code(), Status::Code::kCorruption);
  WalBatch wrong_header = (*batches)[0];
  wrong_header.data[0] ^= 1;
  EXPECT_EQ(standby->ApplyWalBatch(wrong_header).code(), Status::Code::kCorruption);
  WalBatch truncated = (*batches)[0];
  truncated.data.resize(truncated.data.size() - 3);
  EXPECT_EQ(standby->ApplyWalBatch(truncated).code(), Status::Code::kCorruption);
  WalBatch garbage{seq + 1, 1, "short"};
  EXPECT_EQ(standby->ApplyWalBatch(garbage).code(), Status::Code::kCorruption);
  WalBatch empty{seq + 1, 0, ""};
  EXPECT_EQ(standby->ApplyWalBatch(empty).code(), Status::Code::kCorruption);
  expect_unchanged();

  // In order it applies; a resend of an applied batch is a no-op.
  ASSERT_TRUE(standby->ApplyWalBatch((*batches)[0]).ok());
  ASSERT_TRUE(standby->ApplyWalBatch((*batches)[1]).ok());
  const SeqNo after_two = standby->LatestSeq();
  const int fed_after_two = fed;
  EXPECT_TRUE(standby->ApplyWalBatch((*batches)[0]).ok());
  EXPECT_EQ(standby->LatestSeq(), after_two);
  EXPECT_EQ(fed, fed_after_two);
}

TEST(WalTest, DecodeBatchRejectsGarbage) {
  EXPECT_EQ(DecodeBatch("", 1).status().code(), Status::Code::kCorruption);
  EXPECT_EQ(DecodeBatch(std::string(12, '\0') + "\x01", 1).status().code(),
            Status::Code::kCorruption);
  // A header claiming 5 ops with none behind it.
  std::string header(12, '\0');
  header[8] = 5;
  EXPECT_EQ(DecodeBatch(header, 1).status().code(), Status::Code::kCorruption);
}

TEST(LocalStoreTest, PersistsAcrossReopen) {
  TempDir dir;
  {
    auto local = OpenLocalStore(dir.Sub("local"));
    ASSERT_TRUE(local.ok()) << local.status().ToString();
    ASSERT_TRUE((*local)->Put("node/name", "pbx-a").ok());
    ASSERT_TRUE((*local)->Put("node/first_boot", "done").ok());
    ASSERT_TRUE((*local)->Delete("node/first_boot").ok());
    auto missing = (*local)->Get("nope");
    EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
    EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  }
  auto local = OpenLocalStore(dir.Sub("local"));
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  EXPECT_EQ(*(*local)->Get("node/name"), "pbx-a");
  EXPECT_TRUE((*local)->Get("node/first_boot").status().IsNotFound());
}

TEST(LocalStoreTest, SecondOpenOfTheSameDirFails) {
  TempDir dir;
  auto first = OpenLocalStore(dir.Sub("local"));
  ASSERT_TRUE(first.ok());
  auto second = OpenLocalStore(dir.Sub("local"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kIo) << second.status().ToString();
}

}  // namespace
}  // namespace pbx::store
