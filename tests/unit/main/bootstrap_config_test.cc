#include "node/main/bootstrap_config.h"

#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace pbx::node {
namespace {

constexpr char kNodeA[] = R"(# node A of a pair
[node]
name = "pbx-a"
data_dir = "/var/lib/pbx"
run_dir = "/run/pbx"
realtime_priority = 20

[api]
listen = "0.0.0.0"
port = 443
http_port = 80
web_dir = "/opt/pbx/web"

[sip]
udp_port = 5060
tls_port = 5061
digest_sha256 = false

[cluster]
listen = "10.99.0.1:7400"
peer = "10.99.0.2:7400"
vip = "10.99.0.100/24"
interface = "eth0"
witness = "10.99.0.3:7500"
hb_interval_ms = 30
trunk_reregister_window_ms = 500

[store]
wal_ttl_seconds = 7200
)";

// Returns the error message for `text`, or "" if it parsed.
std::string ErrorOf(const std::string& text) {
  Result<BootstrapConfig> c = ParseBootstrapConfig(text, "pbx.toml");
  return c.ok() ? "" : c.status().message();
}

TEST(BootstrapConfigTest, EmbeddedDefaultIsASingleNodeWithDemoExtensions) {
  BootstrapConfig c;
  EXPECT_FALSE(c.cluster.has_value());
  EXPECT_TRUE(c.demo_extensions);
  EXPECT_EQ(c.api_listen, "127.0.0.1");
  EXPECT_EQ(c.api_port, 8443);
  EXPECT_EQ(c.http_port, 0);       // no plain-HTTP redirect
  EXPECT_TRUE(c.web_dir.empty());  // admin::DefaultWebDir()
}

TEST(BootstrapConfigTest, ParsesAFullNodeFile) {
  Result<BootstrapConfig> c = ParseBootstrapConfig(kNodeA, "a.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->node_name, "pbx-a");
  EXPECT_EQ(c->data_dir, "/var/lib/pbx");
  EXPECT_EQ(c->realtime_priority, 20);
  EXPECT_EQ(c->api_listen, "0.0.0.0");
  EXPECT_EQ(c->api_port, 443);
  EXPECT_EQ(c->http_port, 80);
  EXPECT_EQ(c->web_dir, "/opt/pbx/web");
  EXPECT_EQ(c->sip_udp_port, 5060);
  EXPECT_EQ(c->sip_tcp_port, 5060);  // default kept
  EXPECT_FALSE(c->sip_digest_sha256);
  ASSERT_TRUE(c->cluster.has_value());
  EXPECT_EQ(c->cluster->name, "pbx");
  EXPECT_EQ(c->cluster->listen.host, "10.99.0.1");
  EXPECT_EQ(c->cluster->peer.port, 7400);
  ASSERT_TRUE(c->cluster->vip.has_value());
  EXPECT_EQ(c->cluster->vip->address, "10.99.0.100");
  EXPECT_EQ(c->cluster->vip->length, 24);
  EXPECT_EQ(c->cluster->interface, "eth0");
  ASSERT_TRUE(c->cluster->witness.has_value());
  EXPECT_EQ(c->cluster->witness->port, 7500);
  EXPECT_EQ(c->cluster->hb_interval_ms, 30);
  EXPECT_EQ(c->cluster->hb_dead, 5);
  EXPECT_EQ(c->cluster->trunk_reregister_window_ms, 500u);
  EXPECT_EQ(c->wal_ttl_seconds, 7200);
  EXPECT_FALSE(c->demo_extensions);  // a file opts in
}

TEST(BootstrapConfigTest, LoadsFromFileAndNamesItInErrors) {
  test::TempDir dir;
  std::string path = dir.Sub("bad.toml");
  std::ofstream(path) << "[node]\nname = \"a\"\n\n[api]\nport = 70000\n";
  Result<BootstrapConfig> c = LoadBootstrapConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), path + ":5: 'port' must be between 0 and 65535, not 70000");
  EXPECT_FALSE(LoadBootstrapConfig(dir.Sub("missing.toml")).ok());
}

TEST(BootstrapConfigTest, ReportsTheLineOfEachProblem) {
  struct Case {
    std::string text;
    std::string error;
  } cases[] = {
      {"[node]\nname = \"a\"\nnmae = \"b\"\n", "pbx.toml:3: unknown key 'nmae' in [node]"},
      {"[node]\nname = 42\n", "pbx.toml:2: 'name' must be a string"},
      {"[node]\nname = \"a b\"\n",
       "pbx.toml:2: 'name' may hold only letters, digits, '-', '_' and '.'"},
      {"[node]\nlog_level = \"loud\"\n",
       "pbx.toml:2: 'log_level' must be one of debug, info, warn, error"},
      {"[node]\nrealtime_priority = 100\n",
       "pbx.toml:2: 'realtime_priority' must be between 0 and 99, not 100"},
      {"\n\n[api]\nlisten = \"localhost\"\n",
       "pbx.toml:4: 'listen' is not an IP address: 'localhost'"},
      {"[cluster]\nlisten = \"10.0.0.1:7400\"\n", "pbx.toml:1: [cluster] needs 'peer' (host:port)"},
      {"[cluster]\nlisten = \"10.0.0.1:7400\"\npeer = \"10.0.0.2\"\n",
       "pbx.toml:3: 'peer': '10.0.0.2' is not host:port"},
      {"[cluster]\nlisten = \"10.0.0.1:7400\"\npeer = \"10.0.0.2:0\"\n",
       "pbx.toml:3: 'peer': '10.0.0.2:0' has no valid port (1-65535)"},
      {"[cluster]\nlisten = \"10.0.0.1:1\"\npeer = \"10.0.0.2:1\"\nvip = \"10.0.0.100\"\n",
       "pbx.toml:4: 'vip': '10.0.0.100' needs a prefix length, like 10.0.0.100/24"},
      {"[cluster]\nlisten = \"10.0.0.1:1\"\npeer = \"10.0.0.2:1\"\nvip = \"10.0.0.100/33\"\n",
       "pbx.toml:4: 'vip': prefix length must be 1-32, not '33'"},
      {"[cluster]\nlisten = \"10.0.0.1:1\"\npeer = \"10.0.0.2:1\"\nvip = \"10.0.0.100/24\"\n",
       "pbx.toml:4: 'vip' needs 'interface' (the device that carries it)"},
      {"[cluster]\nlisten = \"10.0.0.1:1\"\npeer = \"10.0.0.2:1\"\nhb_interval_ms = 1\n",
       "pbx.toml:4: 'hb_interval_ms' must be between 10 and 10000, not 1"},
      {"[demo]\nextensions = \"yes\"\n", "pbx.toml:2: 'extensions' must be true or false"},
      {"[cluster]\nlisten = \"10.0.0.1:65535\"\npeer = \"10.0.0.2:1\"\n",
       "pbx.toml:1: [cluster] ports must leave room for the heartbeat (port + 1)"},
      {"[sip]\n[sip]\n",
       "pbx.toml:2: Error while parsing table header: cannot redefine existing table 'sip'"},
      {"node = 3\n", "pbx.toml:1: 'node' must be a table"},
      {"[store]\nwal_ttl_seconds = 0\n",
       "pbx.toml:2: 'wal_ttl_seconds' must be between 1 and 2592000, not 0"},
      {"[nodes]\n", "pbx.toml:1: unknown key 'nodes' in [top level]"},
      {"[api]\nhttp_port = 65536\n",
       "pbx.toml:2: 'http_port' must be between 0 and 65535, not 65536"},
      {"[api]\nweb_dir = \"\"\n", "pbx.toml:2: 'web_dir' must not be empty"},
      {"[media]\nrtp_port_min = 20000\nrtp_port_max = 20001\n",
       "pbx.toml:1: [media] rtp_port_max must be at least rtp_port_min + 3"},
      {"[sip]\nring_timeout = 30\n", "pbx.toml:2: unknown key 'ring_timeout' in [sip]"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorOf(c.text), c.error) << "input:\n" << c.text;
  }
}

TEST(BootstrapConfigTest, ShippedExampleMatchesTheEmbeddedDefault) {
  Result<BootstrapConfig> c = LoadBootstrapConfig(PBX_EXAMPLES_DIR "/single.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  BootstrapConfig d;
  EXPECT_EQ(c->node_name, d.node_name);
  EXPECT_EQ(c->data_dir, d.data_dir);
  EXPECT_EQ(c->run_dir, d.run_dir);
  EXPECT_EQ(c->realtime_priority, d.realtime_priority);
  EXPECT_EQ(c->api_port, d.api_port);
  EXPECT_EQ(c->http_port, d.http_port);
  EXPECT_EQ(c->web_dir, d.web_dir);
  EXPECT_EQ(c->sip_tls_port, d.sip_tls_port);
  EXPECT_TRUE(c->sip_digest_sha256);
  EXPECT_EQ(c->media_address, d.media_address);
  EXPECT_EQ(c->rtp_port_min, d.rtp_port_min);
  EXPECT_EQ(c->rtp_port_max, d.rtp_port_max);
  EXPECT_EQ(c->wal_size_limit_mb, d.wal_size_limit_mb);
  EXPECT_EQ(c->demo_extensions, d.demo_extensions);
  EXPECT_FALSE(c->cluster.has_value());
}

TEST(BootstrapConfigTest, ShippedPairExamplesParse) {
  for (const char* name : {"/pair-a.toml", "/pair-b.toml"}) {
    Result<BootstrapConfig> c = LoadBootstrapConfig(std::string(PBX_EXAMPLES_DIR) + name);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE(c->cluster.has_value());
    EXPECT_EQ(c->cluster->name, "demo-pair");
  }
}

TEST(BootstrapConfigTest, ParsesEndpointsAndPrefixes) {
  Result<Endpoint> v6 = ParseEndpoint("[fd00::2]:7400");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "fd00::2");
  EXPECT_EQ(v6->port, 7400);
  EXPECT_FALSE(ParseEndpoint("fd00::2:7400").ok());  // IPv6 needs brackets
  EXPECT_FALSE(ParseEndpoint(":7400").ok());
  EXPECT_FALSE(ParseEndpoint("host:99999").ok());
  Result<Prefix> p = ParsePrefix("fd00::100/64");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->ipv6);
  EXPECT_EQ(p->length, 64);
  EXPECT_FALSE(ParsePrefix("300.1.1.1/24").ok());
}

}  // namespace
}  // namespace pbx::node
