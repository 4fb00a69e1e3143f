#include "tests/system/baresip.h"

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pbx::test {
namespace {

constexpr size_t kWavHeader = 44;
constexpr uint32_t kRate = 8000;

std::vector<int16_t> ReadSamples(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> data((std::istreambuf_iterator<char>(f)), {});
  std::vector<int16_t> samples;
  if (data.size() <= kWavHeader) return samples;
  samples.resize((data.size() - kWavHeader) / 2);
  std::memcpy(samples.data(), data.data() + kWavHeader, samples.size() * 2);
  return samples;
}

double Rms(const int16_t* s, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(s[i]) * s[i];
  return n ? std::sqrt(sum / double(n)) : 0;
}

}  // namespace

std::string CreatePhoneLab(NetLab& lab) {
  if (!std::filesystem::exists(kBaresipPath)) {
    return std::string(kBaresipPath) +
           " is missing: deploy/install-deps.sh --test installs baresip-core";
  }
  std::string why;
  return lab.Create(&why) ? "" : why;
}

BaresipOptions AnsweringPhone(std::string netns, std::string dir, const std::string& address,
                              std::string aor, std::string password, std::string tone) {
  return BaresipOptions{
      .netns = std::move(netns),
      .dir = std::move(dir),
      .listen = address + ":5060",
      .aor = std::move(aor),
      .password = std::move(password),
      .account_params = ";audio_codecs=PCMU;answermode=auto",
      .tone = std::move(tone),
  };
}

BaresipPhone::BaresipPhone(BaresipOptions options) : options_(std::move(options)) {
  const std::string& dir = options_.dir;
  std::filesystem::create_directories(dir + "/rec");
  std::ofstream config(dir + "/config");
  config << "sip_listen " << options_.listen << "\n"
         << "module_path /usr/lib/baresip/modules\n"
         << "module g711.so\n";
  if (!options_.tone.empty()) {
    // aubridge stands in for a sound card; sndfile records what the phone decodes.
    config << "module aufile.so\nmodule aubridge.so\nmodule sndfile.so\nmodule ctrl_tcp.so\n"
           << "module_app menu.so\n"
           << "audio_player aubridge,p" << options_.ctrl_port << "\n"
           << "audio_alert aubridge,p" << options_.ctrl_port << "\n"
           << "audio_source aufile," << options_.tone << "\n"
           << "ctrl_tcp_listen 127.0.0.1:" << options_.ctrl_port << "\n"
           << "snd_path " << dir << "/rec\n"
           << "rtp_ports 20000-20099\n";
  }
  config << "module_tmp uuid.so\nmodule_tmp account.so\n";
  std::ofstream(dir + "/accounts")
      << "<" << options_.aor << ">;auth_pass=" << options_.password << ";regint=" << options_.regint
      << options_.account_params << "\n";
  config.close();
  process_ =
      std::make_unique<Process>(std::vector<std::string>{"ip", "netns", "exec", options_.netns,
                                                         kBaresipPath, "-n", "eth0", "-f", dir},
                                dir + ".log");
}

BaresipPhone::~BaresipPhone() = default;

bool BaresipPhone::Command(const std::string& command, const std::string& params) const {
  std::string body =
      nlohmann::json{{"command", command}, {"params", params}, {"token", "t"}}.dump();
  // A netstring over TCP; the pause lets baresip read it before the socket closes.
  std::string script =
      fmt::format("exec 3<>/dev/tcp/127.0.0.1/{} && printf '%s' '{}:{},' >&3 && sleep 0.5",
                  options_.ctrl_port, body.size(), body);
  return Run({"ip", "netns", "exec", options_.netns, "bash", "-c", script}).exit_code == 0;
}

std::vector<std::string> BaresipPhone::Recordings() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(options_.dir + "/rec", ec)) {
    std::string name = e.path().filename().string();
    if (name.find("dec.wav") != std::string::npos) out.push_back(e.path().string());
  }
  // sndfile names them by time, so the name order is the order they were made in.
  std::sort(out.begin(), out.end());
  return out;
}

double BaresipPhone::ReceivedRms() const {
  double best = 0;
  for (const std::string& path : Recordings()) best = std::max(best, WavRms(path));
  return best;
}

void BaresipPhone::Stop() {
  if (process_) process_->Signal(SIGTERM);
}

std::string BaresipPhone::Log() const { return process_ ? process_->Log() : ""; }

void WriteToneWav(const std::string& path, int seconds, int hz) {
  const uint32_t n = kRate * static_cast<uint32_t>(seconds), bytes = n * 2;
  std::ofstream f(path, std::ios::binary);
  auto u32 = [&](uint32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](uint16_t v) { f.write(reinterpret_cast<const char*>(&v), 2); };
  f << "RIFF";
  u32(36 + bytes);
  f << "WAVEfmt ";
  u32(16);     // fmt chunk size
  u16(1);      // PCM
  u16(1);      // mono
  u32(kRate);  // sample rate
  u32(kRate * 2);
  u16(2);   // block align
  u16(16);  // bits per sample
  f << "data";
  u32(bytes);
  for (uint32_t i = 0; i < n; ++i) {
    u16(static_cast<uint16_t>(static_cast<int16_t>(8000 * std::sin(2 * M_PI * hz * i / kRate))));
  }
}

double WavRms(const std::string& path) {
  std::vector<int16_t> s = ReadSamples(path);
  return Rms(s.data(), s.size());
}

int LongestSilenceMs(const std::string& path, double threshold) {
  constexpr size_t kFrame = kRate / 50;  // 20 ms
  std::vector<int16_t> s = ReadSamples(path);
  std::vector<bool> loud;
  for (size_t i = 0; i + kFrame <= s.size(); i += kFrame) {
    loud.push_back(Rms(s.data() + i, kFrame) >= threshold);
  }
  auto first = std::find(loud.begin(), loud.end(), true);
  if (first == loud.end()) return -1;
  auto last = std::find(loud.rbegin(), loud.rend(), true).base();
  int longest = 0, run = 0;
  for (auto it = first; it != last; ++it) {
    run = *it ? 0 : run + 1;
    longest = std::max(longest, run);
  }
  return longest * 20;
}

}  // namespace pbx::test
