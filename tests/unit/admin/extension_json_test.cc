#include "node/admin/extension_json.h"

#include <gtest/gtest.h>

namespace pbx::admin {
namespace {

using json = nlohmann::json;

json ValidCreate() {
  return json{{"number", "1001"}, {"name", "Alice"}, {"password", "s3cretPass"}};
}

// Parses `body` as a create request; returns the error (or nullopt).
std::optional<FieldError> Create(const json& body, ExtensionInput* out = nullptr) {
  ExtensionInput scratch;
  return ParseExtensionBody(body, ExtensionWrite::kCreate, store::Extension{},
                            out ? out : &scratch);
}

// The field a create request with `field` set to `value` is rejected for ("" if accepted).
std::string RejectedField(const std::string& field, const json& value) {
  json body = ValidCreate();
  body[field] = value;
  std::optional<FieldError> e = Create(body);
  return e ? e->field : "";
}

TEST(ExtensionJsonTest, MinimalCreateGetsDefaults) {
  ExtensionInput in;
  std::optional<FieldError> e = Create(ValidCreate(), &in);
  ASSERT_FALSE(e) << e->field << ": " << e->message;
  EXPECT_EQ(in.ext.number, "1001");
  EXPECT_EQ(in.ext.name, "Alice");
  ASSERT_TRUE(in.password);
  EXPECT_EQ(*in.password, "s3cretPass");
  store::Extension defaults;
  EXPECT_EQ(in.ext.transport, defaults.transport);
  EXPECT_EQ(in.ext.voicemail_pin, "1234");
  EXPECT_EQ(in.ext.registration_expiry, 120u);
  EXPECT_EQ(in.ext.dial_permission, "DialPlan1");
  EXPECT_TRUE(in.ext.ha1_md5.empty());  // the caller computes credentials
}

TEST(ExtensionJsonTest, CreateRequiresNumberNamePassword) {
  for (const char* field : {"number", "name", "password"}) {
    json body = ValidCreate();
    body.erase(field);
    std::optional<FieldError> e = Create(body);
    ASSERT_TRUE(e) << field;
    EXPECT_EQ(e->field, field);
  }
  EXPECT_EQ(RejectedField("password", ""), "password");
}

TEST(ExtensionJsonTest, BodyMustBeAnObject) {
  for (const json& body : {json::array(), json("x"), json(1), json(nullptr)}) {
    std::optional<FieldError> e = Create(body);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->field, "");
  }
}

TEST(ExtensionJsonTest, UnknownFieldIsNamed) {
  json body = ValidCreate();
  body["colour"] = "blue";
  std::optional<FieldError> e = Create(body);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field, "colour");
  EXPECT_NE(e->message.find("unknown field"), std::string::npos);
  // Credentials derived server-side may not be supplied.
  EXPECT_EQ(RejectedField("ha1_md5", "00"), "ha1_md5");
  EXPECT_EQ(RejectedField("realm", "x"), "realm");
}

TEST(ExtensionJsonTest, Number) {
  for (const char* good : {"10", "1001", "12345678901"}) {
    EXPECT_EQ(RejectedField("number", good), "") << good;
  }
  for (const char* bad : {"", "1", "123456789012", "10a1", " 1001", "-100", "１００１"}) {
    EXPECT_EQ(RejectedField("number", bad), "number") << bad;
  }
  EXPECT_EQ(RejectedField("number", 1001), "number");  // must be a string
  EXPECT_TRUE(IsValidExtensionNumber("00"));
  EXPECT_FALSE(IsValidExtensionNumber("0"));
}

TEST(ExtensionJsonTest, Name) {
  for (const char* good : {"A", "Alice Smith", "张伟", "Zoë O'Brien-Łukasz", "Reception #2"}) {
    EXPECT_EQ(RejectedField("name", good), "") << good;
  }
  EXPECT_EQ(RejectedField("name", std::string(64, 'x')), "");
  EXPECT_EQ(RejectedField("name", std::string(65, 'x')), "name");
  // 64 CJK characters are 192 bytes but 64 characters.
  std::string cjk;
  for (int i = 0; i < 64; ++i) cjk += "张";
  EXPECT_EQ(RejectedField("name", cjk), "");
  EXPECT_EQ(RejectedField("name", cjk + "张"), "name");
  for (const char* bad : {"", " Alice", "Alice ", "Al\tice", "Al\nice", "A\x7f"}) {
    EXPECT_EQ(RejectedField("name", bad), "name") << bad;
  }
  EXPECT_EQ(RejectedField("name", true), "name");
  EXPECT_FALSE(IsValidDisplayName("bad \xc3\x28 utf8"));
  EXPECT_FALSE(IsValidDisplayName("\xe5\xbc"));      // truncated sequence
  EXPECT_FALSE(IsValidDisplayName("\xc0\xaf"));      // overlong
  EXPECT_FALSE(IsValidDisplayName("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidDisplayName("a\xc2\x85"));     // C1 control (NEL)
}

TEST(ExtensionJsonTest, Password) {
  EXPECT_EQ(RejectedField("password", "abcdefg1"), "");
  for (const char* bad : {"short1", "abcdefgh", "12345678", "has space1", "x1001yz9"}) {
    EXPECT_EQ(RejectedField("password", bad), "password") << bad;
  }
  EXPECT_EQ(RejectedField("password", 12345678), "password");
  // Containing the number is checked against the number in the same body.
  json body = ValidCreate();
  body["number"] = "2002";
  body["password"] = "x1001yz9";
  EXPECT_FALSE(Create(body));
  body["password"] = "x2002yz9";
  ASSERT_TRUE(Create(body));
  EXPECT_EQ(Create(body)->field, "password");
}

TEST(ExtensionJsonTest, Email) {
  for (const char* good : {"", "a@b.co", "alice.smith+pbx@mail.example.com", "x_y@a-b.org"}) {
    EXPECT_EQ(RejectedField("email", good), "") << good;
  }
  for (const char* bad :
       {"alice", "@b.com", "a@", "a@b", "a@@b.com", "a b@c.com", "a@b..com", ".a@b.com", "a.@b.com",
        "a..b@c.com", "a@-b.com", "a@b-.com", "a@b.com\n"}) {
    EXPECT_EQ(RejectedField("email", bad), "email") << bad;
  }
  EXPECT_FALSE(IsValidEmail(std::string(250, 'a') + "@b.com"));
}

TEST(ExtensionJsonTest, Enumerations) {
  for (const char* v : {"udp", "tcp", "tls"}) EXPECT_EQ(RejectedField("transport", v), "");
  for (const char* v : {"UDP", "ws", ""}) EXPECT_EQ(RejectedField("transport", v), "transport");
  for (const char* v : {"rfc4733", "info", "inband", "auto"}) {
    EXPECT_EQ(RejectedField("dtmf_mode", v), "");
  }
  for (const char* v : {"rfc2833", "sip", ""}) {
    EXPECT_EQ(RejectedField("dtmf_mode", v), "dtmf_mode");
  }
  for (const char* v : {"off", "in", "out", "both"}) EXPECT_EQ(RejectedField("recording", v), "");
  for (const char* v : {"on", "all", ""}) EXPECT_EQ(RejectedField("recording", v), "recording");
  EXPECT_EQ(RejectedField("transport", 1), "transport");
}

TEST(ExtensionJsonTest, IntegerRanges) {
  struct Case {
    const char* field;
    int64_t min, max;
  };
  for (const Case& c : {Case{"max_contacts", 1, 10}, Case{"registration_expiry", 60, 3600},
                        Case{"qualify_interval", 0, 3600}}) {
    EXPECT_EQ(RejectedField(c.field, c.min), "") << c.field;
    EXPECT_EQ(RejectedField(c.field, c.max), "") << c.field;
    EXPECT_EQ(RejectedField(c.field, c.min - 1), c.field);
    EXPECT_EQ(RejectedField(c.field, c.max + 1), c.field);
    EXPECT_EQ(RejectedField(c.field, 5.0), c.field);  // not an integer
    EXPECT_EQ(RejectedField(c.field, "5"), c.field);
    EXPECT_EQ(RejectedField(c.field, true), c.field);
    EXPECT_EQ(RejectedField(c.field, uint64_t{1} << 63), c.field);
  }
  ExtensionInput in;
  json body = ValidCreate();
  body["max_contacts"] = 3;
  body["registration_expiry"] = 600;
  body["qualify_interval"] = 0;
  ASSERT_FALSE(Create(body, &in));
  EXPECT_EQ(in.ext.max_contacts, 3u);
  EXPECT_EQ(in.ext.registration_expiry, 600u);
  EXPECT_EQ(in.ext.qualify_interval, 0u);
}

TEST(ExtensionJsonTest, BooleansMustBeJsonBooleans) {
  for (const char* field : {"voicemail", "remote_registration", "web_login", "nat"}) {
    EXPECT_EQ(RejectedField(field, true), "") << field;
    EXPECT_EQ(RejectedField(field, false), "") << field;
    EXPECT_EQ(RejectedField(field, 1), field);
    EXPECT_EQ(RejectedField(field, "true"), field);
    EXPECT_EQ(RejectedField(field, nullptr), field);
  }
}

TEST(ExtensionJsonTest, VoicemailPin) {
  for (const char* good : {"1234", "0000", "12345678"}) {
    EXPECT_EQ(RejectedField("voicemail_pin", good), "") << good;
  }
  for (const char* bad : {"123", "123456789", "12a4", ""}) {
    EXPECT_EQ(RejectedField("voicemail_pin", bad), "voicemail_pin") << bad;
  }
  EXPECT_EQ(RejectedField("voicemail_pin", 1234), "voicemail_pin");
}

TEST(ExtensionJsonTest, Codecs) {
  EXPECT_EQ(RejectedField("codecs", json::array({"G722", "PCMA"})), "");
  EXPECT_EQ(RejectedField("codecs", json::array({"PCMU", "PCMA", "G722", "G726", "GSM"})), "");
  EXPECT_EQ(RejectedField("codecs", json::array()), "codecs");
  EXPECT_EQ(RejectedField("codecs", json::array({"G729"})), "codecs");
  EXPECT_EQ(RejectedField("codecs", json::array({"pcmu"})), "codecs");
  EXPECT_EQ(RejectedField("codecs", json::array({"PCMU", "PCMU"})), "codecs");
  EXPECT_EQ(RejectedField("codecs", json::array({1})), "codecs");
  EXPECT_EQ(RejectedField("codecs", "PCMU"), "codecs");
  ExtensionInput in;
  json body = ValidCreate();
  body["codecs"] = {"G722", "PCMU"};
  ASSERT_FALSE(Create(body, &in));
  EXPECT_EQ(in.ext.codecs, (std::vector<std::string>{"G722", "PCMU"}));  // order kept
}

TEST(ExtensionJsonTest, TrustedAddresses) {
  EXPECT_EQ(RejectedField("trusted_addresses", json::array()), "");
  EXPECT_EQ(RejectedField("trusted_addresses", json::array({"192.168.1.10", "10.0.0.0/8", "::1",
                                                            "2001:db8::/32", "0.0.0.0/0"})),
            "");
  for (const char* bad : {"192.168.1.300", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/",
                          "10.0.0.0/x", "host.example", "", "1.2.3.4/8/8", " 1.2.3.4"}) {
    EXPECT_EQ(RejectedField("trusted_addresses", json::array({bad})), "trusted_addresses") << bad;
  }
  EXPECT_EQ(RejectedField("trusted_addresses", "10.0.0.1"), "trusted_addresses");
  json many = json::array();
  for (int i = 0; i < 33; ++i) many.push_back("10.0.0." + std::to_string(i));
  EXPECT_EQ(RejectedField("trusted_addresses", many), "trusted_addresses");
  EXPECT_TRUE(IsValidIpOrCidr("fe80::1"));
  EXPECT_FALSE(IsValidIpOrCidr("fe80::1/1280"));
}

TEST(ExtensionJsonTest, OtherStrings) {
  EXPECT_EQ(RejectedField("mobile", "+86 138-0000-0000"), "");
  EXPECT_EQ(RejectedField("mobile", "call me"), "mobile");
  EXPECT_EQ(RejectedField("outbound_cli", "67293500"), "");
  EXPECT_EQ(RejectedField("outbound_cli", "6729-3500"), "outbound_cli");
  EXPECT_EQ(RejectedField("dial_permission", "DialPlan2"), "");
  EXPECT_EQ(RejectedField("dial_permission", "Dial Plan"), "dial_permission");
  EXPECT_EQ(RejectedField("language", "zh-CN"), "");
  EXPECT_EQ(RejectedField("language", "e"), "language");
  EXPECT_EQ(RejectedField("moh", "jazz.v2"), "");
  EXPECT_EQ(RejectedField("moh", "../etc"), "moh");
  EXPECT_EQ(RejectedField("moh", ".."), "moh");
}

TEST(ExtensionJsonTest, ErrorsAreReportedInFixedOrderAndLeaveOutputUntouched) {
  json body = ValidCreate();
  body["transport"] = "carrier pigeon";
  body["email"] = "nope";
  ExtensionInput in;
  in.ext.name = "unchanged";
  std::optional<FieldError> e = Create(body, &in);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field, "email");  // email comes before transport
  EXPECT_EQ(in.ext.name, "unchanged");
}

TEST(ExtensionJsonTest, UpdateIsPartial) {
  store::Extension base;
  base.number = "1001";
  base.name = "Alice";
  base.email = "alice@example.com";
  base.ha1_md5 = "old";
  base.created_unix = 42;
  ExtensionInput in;
  ASSERT_FALSE(ParseExtensionBody(json{{"name", "Alice B"}}, ExtensionWrite::kUpdate, base, &in));
  EXPECT_EQ(in.ext.name, "Alice B");
  EXPECT_EQ(in.ext.email, "alice@example.com");
  EXPECT_EQ(in.ext.ha1_md5, "old");
  EXPECT_EQ(in.ext.created_unix, 42);
  EXPECT_FALSE(in.password);

  ASSERT_FALSE(ParseExtensionBody(json::object(), ExtensionWrite::kUpdate, base, &in));
  ASSERT_FALSE(ParseExtensionBody(json{{"number", "1001"}, {"password", "n3wPassword"}},
                                  ExtensionWrite::kUpdate, base, &in));
  ASSERT_TRUE(in.password);

  std::optional<FieldError> e =
      ParseExtensionBody(json{{"number", "1002"}}, ExtensionWrite::kUpdate, base, &in);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field, "number");
  e = ParseExtensionBody(json{{"password", ""}}, ExtensionWrite::kUpdate, base, &in);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field, "password");
  e = ParseExtensionBody(json{{"password", "a1001bcdef"}}, ExtensionWrite::kUpdate, base, &in);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->field, "password");
}

TEST(ExtensionJsonTest, ToJsonHidesCredentials) {
  store::Extension ext;
  ext.number = "1001";
  ext.name = "Alice";
  ext.realm = "pbx";
  ext.ha1_md5 = "aaaa";
  ext.ha1_sha256 = "bbbb";
  ext.voicemail_pin = "9876";
  json j = ExtensionToJson(ext);
  for (const char* hidden : {"password", "ha1_md5", "ha1_sha256", "voicemail_pin", "realm"}) {
    EXPECT_FALSE(j.contains(hidden)) << hidden;
  }
  std::string text = j.dump();
  EXPECT_EQ(text.find("aaaa"), std::string::npos);
  EXPECT_EQ(text.find("9876"), std::string::npos);
  EXPECT_EQ(j["number"], "1001");
  EXPECT_EQ(j["codecs"], json::array({"PCMU", "PCMA", "G722"}));
}

TEST(ExtensionJsonTest, RoundTrip) {
  store::Extension ext;
  ext.number = "20345";
  ext.name = "Front desk 前台";
  ext.email = "desk@example.com";
  ext.mobile = "+44 7700 900000";
  ext.dial_permission = "DialPlan3";
  ext.outbound_cli = "67293500";
  ext.language = "zh-CN";
  ext.moh = "jazz";
  ext.voicemail = false;
  ext.remote_registration = true;
  ext.max_contacts = 4;
  ext.web_login = true;
  ext.registration_expiry = 300;
  ext.transport = "tls";
  ext.dtmf_mode = "info";
  ext.qualify_interval = 0;
  ext.nat = false;
  ext.trusted_addresses = {"192.168.0.0/16", "2001:db8::1"};
  ext.codecs = {"G722", "GSM"};
  ext.recording = "both";
  ext.created_unix = 1700000000;
  ext.updated_unix = 1700000001;

  // GET output, with a password added, is a valid create body that yields the same record.
  json body = ExtensionToJson(ext);
  body["password"] = "r0undTrip!";
  ExtensionInput in;
  std::optional<FieldError> e = Create(body, &in);
  ASSERT_FALSE(e) << e->field << ": " << e->message;
  EXPECT_EQ(ExtensionToJson(in.ext).dump(), ExtensionToJson([&] {
                                              store::Extension expected = ext;
                                              expected.created_unix =
                                                  0;  // read-only fields are ignored on input
                                              expected.updated_unix = 0;
                                              return expected;
                                            }())
                                                .dump());

  // And as an update body (PUT what you GOT) it changes nothing.
  ExtensionInput same;
  ASSERT_FALSE(ParseExtensionBody(ExtensionToJson(ext), ExtensionWrite::kUpdate, ext, &same));
  EXPECT_EQ(ExtensionToJson(same.ext), ExtensionToJson(ext));
  EXPECT_FALSE(same.password);
}

}  // namespace
}  // namespace pbx::admin
