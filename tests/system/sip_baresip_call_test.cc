// Two baresip phones (a real SIP UA, Debian's baresip-core) call each other through pbxd,
// with audio both ways through the PBX's relay (root only):
//
//   pbxc<pid>_p  pbxd            eth0 10.217.0.1/24 --+
//   pbxc<pid>_a  baresip 2001    eth0 10.217.0.2/24 --+-- br0 in pbxc<pid>_sw
//   pbxc<pid>_b  baresip 2002    eth0 10.217.0.3/24 --+
//
// Each phone plays a 440 Hz tone (aufile) and records what it receives (sndfile); both
// recordings must be non-silent. Alice holds and resumes over baresip's control socket
// (ctrl_tcp), then hangs up; the CDR says answered and the relay count is back at 0.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/system/netns.h"

namespace pbx {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kPbxAddr[] = "10.217.0.1";
constexpr char kPassword[] = "Bare5ip-pw";

// A 16-bit mono 8 kHz WAV of a 440 Hz tone, longer than the call (baresip hangs up when
// its source ends).
void WriteTone(const std::string& path, int seconds) {
  const uint32_t rate = 8000, n = rate * static_cast<uint32_t>(seconds), bytes = n * 2;
  std::ofstream f(path, std::ios::binary);
  auto u32 = [&](uint32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](uint16_t v) { f.write(reinterpret_cast<const char*>(&v), 2); };
  f << "RIFF";
  u32(36 + bytes);
  f << "WAVEfmt ";
  u32(16);
  u16(1);
  u16(1);
  u32(rate);
  u32(rate * 2);
  u16(2);
  u16(16);
  f << "data";
  u32(bytes);
  for (uint32_t i = 0; i < n; ++i) {
    u16(static_cast<uint16_t>(static_cast<int16_t>(8000 * std::sin(2 * M_PI * 440 * i / rate))));
  }
}

// RMS of the 16-bit samples after a 44-byte header; 0 if unreadable.
double WavRms(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> data((std::istreambuf_iterator<char>(f)), {});
  if (data.size() <= 44) return 0;
  double sum = 0;
  size_t n = (data.size() - 44) / 2;
  for (size_t i = 0; i < n; ++i) {
    int16_t s;
    std::memcpy(&s, data.data() + 44 + 2 * i, 2);
    sum += double(s) * s;
  }
  return n ? std::sqrt(sum / double(n)) : 0;
}

class SipBaresipCallTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(BARESIP_PATH)) {
      GTEST_SKIP() << BARESIP_PATH << " is missing: deploy/install-deps.sh --test installs "
                   << "baresip-core";
    }
    std::string why;
    if (!lab_.Create(&why)) GTEST_SKIP() << why;
    ASSERT_EQ(lab_.AddHost("p", "02:00:0a:d9:00:01", {std::string(kPbxAddr) + "/24"}), "");
    ASSERT_EQ(lab_.AddHost("a", "02:00:0a:d9:00:02", {"10.217.0.2/24"}), "");
    ASSERT_EQ(lab_.AddHost("b", "02:00:0a:d9:00:03", {"10.217.0.3/24"}), "");

    std::string config = dir_.Sub("pbx.toml");
    std::ofstream(config) << "[node]\nname = \"baresipcall\"\n"
                          << "data_dir = \"" << dir_.Sub("data") << "\"\n"
                          << "run_dir = \"" << dir_.Sub("run") << "\"\n"
                          << "[api]\nport = 0\n"
                          << "[sip]\nlisten = \"" << kPbxAddr << "\"\n"
                          << "udp_port = 5060\ntcp_port = 5060\ntls_port = 5062\n"
                          << "digest_sha256 = false\n"  // libre 1.x refuses SHA-256 in a 401
                          << "[demo]\nextensions = false\n";
    pbxd_ = std::make_unique<test::Process>(
        std::vector<std::string>{"ip", "netns", "exec", lab_.ns("p"), PBXD_PATH, "--config",
                                 config},
        dir_.Sub("pbxd.log"));
    ASSERT_TRUE(
        test::WaitFor([&] { return std::filesystem::exists(dir_.Sub("run/ready.json")); }, 30s))
        << pbxd_->Log();
    for (const char* n : {"2001", "2002"}) {
      test::CommandResult r = Pbxctl({"ext", "add", n, "--name", std::string("Phone ") + n,
                                      "--password", kPassword, "--codecs", "PCMU"});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }
    WriteTone(dir_.Sub("tone.wav"), 60);
  }

  void TearDown() override {
    phones_.clear();  // before the lab removes their namespaces
    pbxd_.reset();
  }

  test::CommandResult Pbxctl(std::vector<std::string> args) {
    std::vector<std::string> cmd = {"ip",        "netns",     "exec",         lab_.ns("p"),
                                    PBXCTL_PATH, "--run-dir", dir_.Sub("run")};
    cmd.insert(cmd.end(), args.begin(), args.end());
    return test::Run(cmd);
  }

  json PbxctlJson(std::vector<std::string> args) {
    args.push_back("--json");
    test::CommandResult r = Pbxctl(args);
    if (r.exit_code != 0) return json::object();
    json j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }

  // baresip in namespace `role` as extension `number`, auto-answering, tone out, recording in.
  void StartPhone(const std::string& role, const std::string& number, const std::string& addr) {
    std::string dir = dir_.Sub("phone" + number);
    std::filesystem::create_directories(dir + "/rec");
    std::ofstream(dir + "/config") << "sip_listen " << addr << ":5060\n"
                                   << "module_path /usr/lib/baresip/modules\n"
                                   << "module g711.so\nmodule aufile.so\nmodule aubridge.so\n"
                                   << "module sndfile.so\nmodule ctrl_tcp.so\n"
                                   << "module_tmp uuid.so\nmodule_tmp account.so\n"
                                   << "module_app menu.so\n"
                                   << "audio_player aubridge,p" << number << "\n"
                                   << "audio_alert aubridge,p" << number << "\n"
                                   << "audio_source aufile," << dir_.Sub("tone.wav") << "\n"
                                   << "ctrl_tcp_listen 127.0.0.1:4444\n"
                                   << "snd_path " << dir << "/rec\n"
                                   << "rtp_ports 20000-20099\n";
    std::ofstream(dir + "/accounts")
        << "<sip:" << number << "@" << kPbxAddr << ">;auth_pass=" << kPassword
        << ";regint=60;audio_codecs=PCMU;answermode=auto\n";
    phones_.push_back(std::make_unique<test::Process>(
        std::vector<std::string>{"ip", "netns", "exec", lab_.ns(role), BARESIP_PATH, "-n", "eth0",
                                 "-f", dir},
        dir + ".log"));
  }

  // One ctrl_tcp command (a netstring of JSON) to the phone in namespace `role`.
  bool Command(const std::string& role, const std::string& command, const std::string& params) {
    std::string body = json{{"command", command}, {"params", params}, {"token", "t"}}.dump();
    std::string script =
        fmt::format("exec 3<>/dev/tcp/127.0.0.1/4444 && printf '%s' '{}:{},' >&3 && sleep 0.5",
                    body.size(), body);
    return test::Run({"ip", "netns", "exec", lab_.ns(role), "bash", "-c", script}).exit_code == 0;
  }

  bool Registered(const std::string& number) {
    json regs = PbxctlJson({"reg", "list"});
    if (!regs.contains("registrations")) return false;
    for (const json& r : regs["registrations"]) {
      if (r["number"] == number) return true;
    }
    return false;
  }

  // The largest RMS among the phone's recordings of what it received ("*-dec.wav").
  double ReceivedRms(const std::string& number) {
    double best = 0;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator(dir_.Sub("phone" + number + "/rec"), ec)) {
      std::string name = e.path().filename().string();
      if (name.find("dec.wav") != std::string::npos) best = std::max(best, WavRms(e.path()));
    }
    return best;
  }

  std::string PhoneLogs() {
    std::string out;
    for (const auto& p : phones_) out += p->Log();
    return out;
  }

  test::NetLab lab_{"pbxc"};
  test::TempDir dir_;
  std::unique_ptr<test::Process> pbxd_;
  std::vector<std::unique_ptr<test::Process>> phones_;
};

TEST_F(SipBaresipCallTest, CallWithAudioBothWaysHoldResumeHangUp) {
  StartPhone("a", "2001", "10.217.0.2");
  StartPhone("b", "2002", "10.217.0.3");
  ASSERT_TRUE(test::WaitFor([&] { return Registered("2001") && Registered("2002"); }, 20s))
      << PhoneLogs() << pbxd_->Log();

  ASSERT_TRUE(Command("a", "dial", fmt::format("sip:2002@{}", kPbxAddr)));
  auto talking = [&] {
    json c = PbxctlJson({"calls"});
    return c.contains("calls") && c["calls"].size() == 1 && c["calls"][0]["state"] == "talking";
  };
  ASSERT_TRUE(test::WaitFor(talking, 15s)) << PhoneLogs() << pbxd_->Log();
  std::this_thread::sleep_for(3s);  // audio both ways

  ASSERT_TRUE(Command("a", "hold", ""));
  ASSERT_TRUE(test::WaitFor(
      [&] { return pbxd_->Log().find("re-INVITE from caller: hold") != std::string::npos; }, 10s))
      << PhoneLogs() << pbxd_->Log();
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(Command("a", "resume", ""));
  ASSERT_TRUE(test::WaitFor(
      [&] { return pbxd_->Log().find("re-INVITE from caller: resume") != std::string::npos; }, 10s))
      << PhoneLogs() << pbxd_->Log();
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(talking());

  ASSERT_TRUE(Command("a", "hangup", ""));
  ASSERT_TRUE(test::WaitFor(
      [&] {
        json c = PbxctlJson({"calls"});
        return c.contains("calls") && c["calls"].empty() && c["relays"] == 0;
      },
      10s))
      << PhoneLogs() << pbxd_->Log();
  json cdr;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        cdr = PbxctlJson({"cdr"});
        return cdr.contains("records") && cdr["records"].size() == 1;
      },
      5s));
  EXPECT_EQ(cdr["records"][0]["status"], "answered") << cdr.dump();
  EXPECT_EQ(cdr["records"][0]["caller"], "2001");
  EXPECT_EQ(cdr["records"][0]["callee"], "2002");
  EXPECT_GE(cdr["records"][0]["billable"].get<int>(), 4);

  phones_.clear();  // flushes the recordings
  // The tone is 8000 peak (RMS ~5650); G.711 both ways keeps it well above silence.
  EXPECT_GT(ReceivedRms("2001"), 1000) << "caller heard nothing";
  EXPECT_GT(ReceivedRms("2002"), 1000) << "callee heard nothing";
}

}  // namespace
}  // namespace pbx
