// The CDR search of the REST API: filters, paging, the CSV export (RFC 4180 quoting) and the
// extension user's own call log, against a real ApiServer over TLS on port 0.
#include <httplib.h>

#include <string>

#include <gtest/gtest.h>

#include "tests/unit/admin/api_test_env.h"

namespace pbx::admin {
namespace {

using json = nlohmann::json;
using testing::HttpReply;
using testing::kAdminPassword;

constexpr int64_t kT0 = 1'800'000'000'000;  // ms

class CdrApiTest : public testing::ApiTestEnv {
 protected:
  void SetUp() override {
    ApiTestEnv::SetUp();
    admin_ = TokenFor("admin", kAdminPassword);
    ASSERT_FALSE(admin_.empty());
    // 2001 calls 2002 (answered), 2002 calls 2003 (busy), 2003 calls 2001 who is
    // forwarded to 2004 (answered there), one outbound call of 2001.
    Add(1, 0, "2001", "Smith, \"Al\"", "2002", "2002", "internal", "answered");
    Add(2, 60, "2002", "Bob", "2003", "2003", "internal", "busy");
    Add(3, 120, "2003", "Carol", "2001", "2004", "internal", "answered");
    Add(4, 180, "2001", "Smith, \"Al\"", "0301234567", "0301234567", "outbound", "no_answer",
        "4711");
    ASSERT_EQ(CallJson("POST", "/api/v1/extensions", admin_,
                       json{{"number", "2001"},
                            {"name", "Al"},
                            {"password", "s3cretPass"},
                            {"web_login", true}})
                  .status,
              201);
  }

  void Add(uint64_t id, int64_t at_s, std::string caller, std::string name, std::string callee,
           std::string final_callee, std::string type, std::string status, std::string pin = "") {
    store::Cdr c;
    c.pin = std::move(pin);
    c.id = id;
    c.start_unix_ms = kT0 + at_s * 1000;
    c.end_unix_ms = c.start_unix_ms + 5000;
    c.caller = std::move(caller);
    c.caller_name = std::move(name);
    c.callee = std::move(callee);
    c.final_callee = std::move(final_callee);
    c.type = std::move(type);
    c.status = std::move(status);
    c.duration_seconds = 5;
    store::WriteSet writes;
    store::CdrRepo::Append(c, writes);
    ASSERT_TRUE(store_->Commit(writes, store::Durability::kReplicated).ok());
  }

  std::vector<uint64_t> Ids(const std::string& query, const std::string& token,
                            const std::string& path = "/api/v1/cdr") {
    HttpReply r = Call("GET", path + query, token);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    std::vector<uint64_t> ids;
    for (const json& c : r.body["records"]) ids.push_back(c["id"]);
    return ids;
  }

  std::string admin_;
};

TEST_F(CdrApiTest, FiltersAndPages) {
  using V = std::vector<uint64_t>;
  EXPECT_EQ(Ids("", admin_), (V{1, 2, 3, 4}));
  EXPECT_EQ(Ids("?caller=2001", admin_), (V{1, 4}));
  EXPECT_EQ(Ids("?callee=2004", admin_), (V{3}));
  EXPECT_EQ(Ids("?status=answered", admin_), (V{1, 3}));
  EXPECT_EQ(Ids("?type=outbound", admin_), (V{4}));
  EXPECT_EQ(Ids("?pin=4711", admin_), (V{4}));  // the PIN entered for a route's PIN set
  EXPECT_EQ(Ids("?pin=4712", admin_), (V{}));
  EXPECT_EQ(Call("GET", "/api/v1/cdr?type=outbound", admin_).body["records"][0]["pin"], "4711");
  const int64_t t0 = kT0 / 1000;
  EXPECT_EQ(Ids("?from=" + std::to_string(t0 + 60) + "&to=" + std::to_string(t0 + 180), admin_),
            (V{2, 3}));

  HttpReply page = Call("GET", "/api/v1/cdr?limit=3", admin_);
  EXPECT_EQ(page.body["records"].size(), 3u);
  EXPECT_EQ(page.body["more"], true);
  page = Call("GET", "/api/v1/cdr?limit=3&offset=3", admin_);
  ASSERT_EQ(page.body["records"].size(), 1u);
  EXPECT_EQ(page.body["records"][0]["id"], 4);
  EXPECT_EQ(page.body["more"], false);

  for (const char* bad : {"?status=lost", "?type=local", "?offset=-1", "?limit=0", "?format=xml",
                          "?from=yesterday"}) {
    HttpReply r = Call("GET", std::string("/api/v1/cdr") + bad, admin_);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_FALSE(r.body["error"]["field"].get<std::string>().empty()) << bad;
  }
}

TEST_F(CdrApiTest, CsvQuotesCommasAndQuotesAndKeepsTheFilters) {
  auto client = Client();
  httplib::Result r = client->Get("/api/v1/cdr?format=csv&caller=2001&status=answered",
                                  {{"Authorization", "Bearer " + admin_}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/csv; charset=utf-8");
  EXPECT_NE(r->get_header_value("Content-Disposition").find("attachment"), std::string::npos);
  EXPECT_EQ(r->body,
            "id,start,answer,end,caller,caller_name,callee,final_callee,duration,billable,trunk,"
            "type,status,cause,hangup_side,recorded,pin\r\n"
            "1,2027-01-15T08:00:00Z,,2027-01-15T08:00:05Z,2001,\"Smith, \"\"Al\"\"\",2002,2002,5,"
            "0,,internal,answered,,,no,\r\n");
}

TEST_F(CdrApiTest, ExtensionUsersSeeOnlyTheirOwnCalls) {
  std::string al = TokenFor("2001", "s3cretPass");
  using V = std::vector<uint64_t>;
  // Placed (1, 4) and received as dialled (3), whatever the query string claims.
  EXPECT_EQ(Ids("", al, "/api/v1/me/cdr"), (V{1, 3, 4}));
  EXPECT_EQ(Ids("?status=answered", al, "/api/v1/me/cdr"), (V{1, 3}));
  EXPECT_EQ(Ids("?limit=1&offset=1", al, "/api/v1/me/cdr"), (V{3}));
  EXPECT_EQ(Call("GET", "/api/v1/me/cdr?caller=2002", al).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/me/cdr?callee=2002", al).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/me/cdr?pin=4711", al).status, 400);
  // The PIN stays the administrator's audit trail, not shown in an own call log.
  HttpReply own = Call("GET", "/api/v1/me/cdr?type=outbound", al);
  ASSERT_EQ(own.body["records"].size(), 1u);
  EXPECT_EQ(own.body["records"][0]["pin"], "");
  // Everyone's records are not the extension user's to read; a web account has no own log.
  EXPECT_EQ(Call("GET", "/api/v1/cdr", al).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/me/cdr", admin_).status, 403);
}

}  // namespace
}  // namespace pbx::admin
