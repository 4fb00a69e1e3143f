#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/system/netns.h"

// baresip (Debian's baresip-core) as a phone in a network namespace, for system tests. libre
// takes its address from a non-loopback interface, so phones run in namespaces of their own
// (NOTES-deps §3). A phone with a tone plays it as its microphone and records what it
// receives (sndfile: "<dir>/rec/*-dec.wav"); its control socket (ctrl_tcp) dials, answers,
// holds and hangs up.
namespace pbx::test {

// Where baresip is; the tests skip without it.
inline constexpr char kBaresipPath[] = "/usr/bin/baresip";

// Creates `lab` for a test with baresip phones: "" on success, else why the test skips
// (baresip is not installed, or namespaces cannot be created).
std::string CreatePhoneLab(NetLab& lab);

struct BaresipOptions {
  std::string netns;   // the namespace it runs in
  std::string dir;     // its configuration and recordings (created)
  std::string listen;  // "address:port" of its SIP socket (port + 1 is taken for TLS)
  std::string aor;     // "sip:2001@10.217.0.1": the account, registered there
  std::string password;
  // Appended to the account line, e.g. ";audio_codecs=PCMU;answermode=auto".
  std::string account_params = "";
  // A WAV to send as the microphone; empty: a phone without audio (registration only).
  std::string tone = "";
  uint16_t ctrl_port = 4444;  // ctrl_tcp on 127.0.0.1 in its namespace (with a tone only)
  int regint = 60;            // registration interval, seconds
};

// A phone in `netns` on `address`:5060 that answers by itself (PCMU), plays `tone` and
// records what it hears; its files in `dir`.
BaresipOptions AnsweringPhone(std::string netns, std::string dir, const std::string& address,
                              std::string aor, std::string password, std::string tone);

class BaresipPhone {
 public:
  // Writes the configuration and starts baresip.
  explicit BaresipPhone(BaresipOptions options);
  ~BaresipPhone();  // stops it (SIGTERM: the recordings are flushed)
  BaresipPhone(const BaresipPhone&) = delete;
  BaresipPhone& operator=(const BaresipPhone&) = delete;

  // One ctrl_tcp command ("dial" with a URI, "accept", "hold", "resume", "hangup").
  bool Command(const std::string& command, const std::string& params = "") const;
  // The recordings of what it received, oldest first.
  std::vector<std::string> Recordings() const;
  // The largest RMS among those recordings.
  double ReceivedRms() const;
  // Stops baresip so that its recordings are complete; idempotent.
  void Stop();
  std::string Log() const;
  const BaresipOptions& options() const { return options_; }

 private:
  BaresipOptions options_;
  std::unique_ptr<Process> process_;
};

// A 16-bit mono 8 kHz WAV of a `hz` tone at amplitude 8000, `seconds` long (baresip hangs up
// when its source ends, so make it longer than the call).
void WriteToneWav(const std::string& path, int seconds, int hz = 440);

// RMS of a 16-bit WAV's samples after its 44-byte header; 0 if unreadable.
double WavRms(const std::string& path);

// The longest stretch, in ms, of 20 ms frames whose RMS is below `threshold`, between the
// first and the last loud frame of a 16-bit 8 kHz WAV (the gap in audio a listener heard);
// -1 if it has no loud frame.
int LongestSilenceMs(const std::string& path, double threshold = 500);

}  // namespace pbx::test
