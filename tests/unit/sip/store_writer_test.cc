#include "sip/store_writer.h"

#include <atomic>
#include <future>

#include <gtest/gtest.h>

#include "replication/store/repos.h"

namespace pbx::sip {
namespace {

TEST(RegistrationRecordTest, EncodesAndDecodesEveryField) {
  store::Registration r;
  r.number = "2001";
  r.binding_id = "0123456789abcdef";
  r.contact = "sip:2001@192.0.2.10:5062;transport=udp";
  r.received_host = "203.0.113.4";
  r.received_port = 40123;
  r.transport = "udp";
  r.path = {"<sip:edge.example.net;lr>"};
  r.expires_unix = 1700003600;
  r.registered_unix = 1700000000;
  r.user_agent = "Yealink T46U";
  r.call_id = "abc@192.0.2.10";
  r.cseq = 42;
  r.qualify_ok = false;
  r.qualify_rtt_ms = 17;
  r.qualify_unix = 1700000060;
  r.instance = "<urn:uuid:00000000-0000-1000-8000-000000000001>";
  std::string key = store::RegistrationRepo::Key(r.number, r.binding_id);
  Result<store::Registration> back =
      store::RegistrationRepo::DecodeValue(key, store::RegistrationRepo::Encode(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);
  // Stored under another key: corruption, not a wrong binding.
  EXPECT_FALSE(
      store::RegistrationRepo::DecodeValue("reg/2002/x", store::RegistrationRepo::Encode(r)).ok());
  EXPECT_EQ(store::RegistrationRepo::DecodeValue(key, "garbage!").status().code(),
            Status::Code::kCorruption);
  std::string number, id;
  ASSERT_TRUE(store::RegistrationRepo::KeyParts(key, &number, &id));
  EXPECT_EQ(number, "2001");
  EXPECT_EQ(id, r.binding_id);
}

TEST(StoreWriterTest, MergesWhatIsPendingIntoFewCommits) {
  std::unique_ptr<store::StateStore> store = store::NewMemStateStore();
  std::atomic<int> done{0};
  {
    StoreWriter writer(*store);
    for (int i = 0; i < 200; ++i) {
      store::WriteSet w;
      w.Put(store::Table::kRuntime, "reg/" + std::to_string(i) + "/x", "v");
      writer.Submit(std::move(w),
                    i % 2 ? store::Durability::kReplicated : store::Durability::kAsync,
                    [&](const Status& s) {
                      EXPECT_TRUE(s.ok());
                      ++done;
                    });
    }
    writer.Stop();
    EXPECT_LE(writer.commits(), 200u);
    store::WriteSet late;
    late.Put(store::Table::kRuntime, "late", "v");
    std::promise<Status> refused;
    writer.Submit(std::move(late), store::Durability::kAsync,
                  [&](const Status& s) { refused.set_value(s); });
    EXPECT_EQ(refused.get_future().get().code(), Status::Code::kUnavailable);
  }
  EXPECT_EQ(done.load(), 200);
  EXPECT_EQ(store->Scan(store::Table::kRuntime, "reg/")->size(), 200u);
}

}  // namespace
}  // namespace pbx::sip
