#include "media/sdp/sdp.h"

#include <algorithm>
#include <charconv>

#include <arpa/inet.h>
#include <fmt/format.h>

#include "node/core/log.h"

namespace pbx::media {
namespace {

constexpr size_t kMaxSdpBytes = 64 * 1024;

// Splits on runs of spaces; SDP fields are separated by exactly one, but peers are sloppy.
std::vector<std::string_view> Fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

template <typename T>
bool ParseNumber(std::string_view s, T min, T max, T* out) {
  if (s.empty()) return false;
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < min || v > max) return false;
  *out = v;
  return true;
}

bool IsIpLiteral(std::string_view addr_type, std::string_view address) {
  std::string a(address);
  unsigned char buf[16];
  if (addr_type == "IP4") return inet_pton(AF_INET, a.c_str(), buf) == 1;
  if (addr_type == "IP6") return inet_pton(AF_INET6, a.c_str(), buf) == 1;
  return false;
}

// "IN IP4 192.0.2.1[/127[/3]]"; a host name is allowed by RFC 4566, so only the shape is
// checked here.
std::optional<Connection> ParseConnection(std::string_view value) {
  auto f = Fields(value);
  if (f.size() != 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6")) return std::nullopt;
  std::string_view addr = f[2].substr(0, f[2].find('/'));
  if (addr.empty()) return std::nullopt;
  return Connection{std::string(f[1]), std::string(addr)};
}

// For "a=name:value" or "a=name" lines: the name, and the value after ':' (or "").
std::string_view AttrName(std::string_view v) { return v.substr(0, v.find(':')); }
std::string_view AttrValue(std::string_view v) {
  size_t c = v.find(':');
  return c == std::string_view::npos ? std::string_view() : v.substr(c + 1);
}

std::optional<Direction> DirectionFromName(std::string_view name) {
  if (name == "sendrecv") return Direction::kSendRecv;
  if (name == "sendonly") return Direction::kSendOnly;
  if (name == "recvonly") return Direction::kRecvOnly;
  if (name == "inactive") return Direction::kInactive;
  return std::nullopt;
}

std::optional<Connection> FindConnection(const std::vector<SdpLine>& lines) {
  for (const auto& l : lines) {
    if (l.type == 'c') return ParseConnection(l.value);
  }
  return std::nullopt;
}

std::optional<Direction> FindDirection(const std::vector<SdpLine>& lines) {
  for (const auto& l : lines) {
    if (l.type != 'a') continue;
    if (auto d = DirectionFromName(l.value)) return d;
  }
  return std::nullopt;
}

// a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]
bool ParseRtpmap(std::string_view v, uint8_t* pt, RtpFormat* f) {
  size_t sp = v.find(' ');
  if (sp == std::string_view::npos || !ParseNumber<uint8_t>(v.substr(0, sp), 0, 127, pt)) {
    return false;
  }
  std::string_view rest = v.substr(sp + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  size_t s1 = rest.find('/');
  if (s1 == 0 || s1 == std::string_view::npos) return false;
  std::string_view enc = rest.substr(0, s1);
  std::string_view rate = rest.substr(s1 + 1);
  std::string_view chans;
  if (size_t s2 = rate.find('/'); s2 != std::string_view::npos) {
    chans = rate.substr(s2 + 1);
    rate = rate.substr(0, s2);
  }
  uint32_t clock = 0, channels = 1;
  if (!ParseNumber<uint32_t>(rate, 1, 10'000'000, &clock)) return false;
  if (!chans.empty() && !ParseNumber<uint32_t>(chans, 1, 255, &channels)) return false;
  f->encoding = std::string(enc);
  f->clock_rate = clock;
  f->channels = channels;
  return true;
}

// a=fmtp:<format> <parameters>: the format part.
std::string_view FmtpFormat(std::string_view v) { return v.substr(0, v.find(' ')); }

bool IsIceAttribute(std::string_view name) {
  return name == "candidate" || name == "remote-candidates" || name == "end-of-candidates" ||
         name.starts_with("ice-");
}

Status LineError(size_t line_no, std::string_view what, std::string_view line) {
  constexpr size_t kQuote = 60;  // enough to recognise the line, never a whole attack
  std::string shown(line.substr(0, kQuote));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return Status::InvalidArgument(fmt::format("SDP line {}: {} ({}{})", line_no, what, shown,
                                             line.size() > kQuote ? "..." : ""));
}

// Checks one line of a media section (or of the session) that the PBX interprets.
Status CheckLine(const SdpLine& l, const MediaDescription* m, size_t line_no,
                 std::string_view raw) {
  if (l.type == 'c' && !ParseConnection(l.value)) {
    return LineError(line_no, "bad c= (want \"IN IP4|IP6 <address>\")", raw);
  }
  if (l.type != 'a' || m == nullptr) return Status::Ok();
  std::string_view name = AttrName(l.value), value = AttrValue(l.value);
  if (name == "rtpmap") {
    uint8_t pt;
    RtpFormat f;
    if (!ParseRtpmap(value, &pt, &f)) return LineError(line_no, "bad a=rtpmap", raw);
  } else if (name == "fmtp" && m->IsRtp()) {
    uint8_t pt;
    if (!ParseNumber<uint8_t>(FmtpFormat(value), 0, 127, &pt)) {
      return LineError(line_no, "bad a=fmtp payload type", raw);
    }
  } else if (name == "rtcp") {
    auto f = Fields(value);
    uint16_t port;
    if (f.empty() || !ParseNumber<uint16_t>(f[0], 1, 65535, &port) ||
        (f.size() > 1 && (f.size() != 4 || !ParseConnection(value.substr(value.find(' ') + 1))))) {
      return LineError(line_no, "bad a=rtcp", raw);
    }
  }
  return Status::Ok();
}

// m=<media> <port>[/<count>] <proto> <fmt> ...
Status ParseMediaLine(std::string_view value, size_t line_no, std::string_view raw,
                      MediaDescription* m) {
  auto f = Fields(value);
  if (f.size() < 4) return LineError(line_no, "m= needs media, port, proto and a format", raw);
  m->media = std::string(f[0]);
  std::string_view port = f[1];
  if (size_t slash = port.find('/'); slash != std::string_view::npos) {
    uint16_t count;
    if (!ParseNumber<uint16_t>(port.substr(slash + 1), 1, 65535, &count)) {
      return LineError(line_no, "bad m= port count", raw);
    }
    m->port_count = count;
    port = port.substr(0, slash);
  }
  if (!ParseNumber<uint16_t>(port, 0, 65535, &m->port)) {
    return LineError(line_no, "bad m= port", raw);
  }
  m->proto = std::string(f[2]);
  for (size_t i = 3; i < f.size(); ++i) m->formats.emplace_back(f[i]);
  if (m->IsRtp()) {
    for (const auto& fmt : m->formats) {
      uint8_t pt;
      if (!ParseNumber<uint8_t>(fmt, 0, 127, &pt)) {
        return LineError(line_no, "m= RTP payload type not in 0-127", raw);
      }
    }
  }
  return Status::Ok();
}

void AppendLine(std::string& out, char type, std::string_view value) {
  out += type;
  out += '=';
  out += value;
  out += "\r\n";
}

std::string MediaLine(const MediaDescription& m) {
  std::string s = fmt::format("{} {}", m.media, m.port);
  if (m.port_count) s += fmt::format("/{}", *m.port_count);
  s += ' ';
  s += m.proto;
  for (const auto& f : m.formats) {
    s += ' ';
    s += f;
  }
  return s;
}

// Rewrites the address of every c= line in `lines` (keeping a multicast /ttl suffix
// would be wrong for a unicast anchor, so it goes).
void RewriteConnections(std::vector<SdpLine>& lines, const std::string& c_value) {
  for (auto& l : lines) {
    if (l.type == 'c') l.value = c_value;
  }
}

}  // namespace

std::string_view DirectionName(Direction d) {
  switch (d) {
    case Direction::kSendRecv:
      return "sendrecv";
    case Direction::kSendOnly:
      return "sendonly";
    case Direction::kRecvOnly:
      return "recvonly";
    case Direction::kInactive:
      return "inactive";
  }
  return "sendrecv";
}

bool MediaDescription::IsRtp() const { return proto.starts_with("RTP/"); }

std::optional<Connection> MediaDescription::connection() const { return FindConnection(lines); }

std::optional<Direction> MediaDescription::direction() const { return FindDirection(lines); }

std::vector<RtpFormat> MediaDescription::rtp_formats() const {
  std::vector<RtpFormat> out;
  for (const auto& f : formats) {
    RtpFormat r;
    PBX_CHECK(ParseNumber<uint8_t>(f, 0, 127, &r.pt));
    // RFC 3551 static assignments the PBX relays; an rtpmap below overrides them.
    if (r.pt == 0) r = {0, "PCMU", 8000, 1, ""};
    if (r.pt == 8) r = {8, "PCMA", 8000, 1, ""};
    if (r.pt == 9) r = {9, "G722", 8000, 1, ""};
    out.push_back(r);
  }
  for (const auto& l : lines) {
    if (l.type != 'a') continue;
    std::string_view name = AttrName(l.value), value = AttrValue(l.value);
    if (name == "rtpmap") {
      uint8_t pt;
      RtpFormat f;
      if (!ParseRtpmap(value, &pt, &f)) continue;
      for (auto& r : out) {
        if (r.pt != pt) continue;
        f.pt = pt;
        f.fmtp = r.fmtp;
        r = f;
      }
    } else if (name == "fmtp") {
      uint8_t pt;
      if (!ParseNumber<uint8_t>(FmtpFormat(value), 0, 127, &pt)) continue;
      size_t sp = value.find(' ');
      std::string params(sp == std::string_view::npos ? "" : value.substr(sp + 1));
      for (auto& r : out) {
        if (r.pt == pt) r.fmtp = params;
      }
    }
  }
  return out;
}

std::optional<uint16_t> MediaDescription::rtcp_port() const {
  auto v = attribute("rtcp");
  if (!v) return std::nullopt;
  auto f = Fields(*v);
  uint16_t rtcp;
  if (f.empty() || !ParseNumber<uint16_t>(f[0], 1, 65535, &rtcp)) return std::nullopt;
  return rtcp;
}

std::optional<std::string> MediaDescription::attribute(std::string_view name) const {
  for (const auto& l : lines) {
    if (l.type == 'a' && AttrName(l.value) == name) return std::string(AttrValue(l.value));
  }
  return std::nullopt;
}

void MediaDescription::SetDirection(Direction d) {
  std::erase_if(lines, [](const SdpLine& l) {
    return l.type == 'a' && DirectionFromName(l.value).has_value();
  });
  lines.push_back({'a', std::string(DirectionName(d))});
}

void MediaDescription::KeepFormats(std::span<const uint8_t> pts) {
  PBX_CHECK(IsRtp());
  auto kept = [&](std::string_view pt_text) {
    uint8_t pt;
    return ParseNumber<uint8_t>(pt_text, 0, 127, &pt) &&
           std::find(pts.begin(), pts.end(), pt) != pts.end();
  };
  std::vector<std::string> out;
  for (uint8_t want : pts) {
    // By value: "000" on the m= line is PT 0.
    auto it = std::find_if(formats.begin(), formats.end(), [&](const std::string& f) {
      uint8_t pt;
      return ParseNumber<uint8_t>(f, 0, 127, &pt) && pt == want;
    });
    if (it != formats.end()) out.push_back(*it);
  }
  formats = std::move(out);
  std::erase_if(lines, [&](const SdpLine& l) {
    if (l.type != 'a') return false;
    std::string_view name = AttrName(l.value), value = AttrValue(l.value);
    if (name == "rtpmap" || name == "fmtp") return !kept(value.substr(0, value.find(' ')));
    return false;
  });
}

Result<SessionDescription> SessionDescription::Parse(std::string_view text) {
  if (text.size() > kMaxSdpBytes) {
    return Status::InvalidArgument(
        fmt::format("SDP of {} bytes is larger than {}", text.size(), kMaxSdpBytes));
  }
  SessionDescription sd;
  bool have_origin = false;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view raw =
        text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (raw.empty()) {
      if (pos >= text.size()) break;  // the final line end
      return LineError(line_no, "empty line", raw);
    }
    if (raw.size() < 2 || raw[1] != '=' || raw[0] < 'a' || raw[0] > 'z') {
      return LineError(line_no, "not <letter>=<value>", raw);
    }
    if (std::any_of(raw.begin(), raw.end(), [](char c) { return c == '\0' || c == '\r'; })) {
      return LineError(line_no, "control character in line", raw);
    }
    SdpLine l{raw[0], std::string(raw.substr(2))};
    if (line_no == 1) {
      if (l.type != 'v' || l.value != "0") return LineError(line_no, "first line must be v=0", raw);
    } else if (l.type == 'v') {
      return LineError(line_no, "second v=", raw);
    }
    if (l.type == 'm') {
      MediaDescription m;
      PBX_TRY(ParseMediaLine(l.value, line_no, raw, &m));
      sd.media.push_back(std::move(m));
      continue;
    }
    if (l.type == 'o') {
      if (!sd.media.empty() || have_origin) return LineError(line_no, "misplaced o=", raw);
      auto f = Fields(l.value);
      if (f.size() != 6 || f[3] != "IN") {
        return LineError(line_no, "bad o= (want 6 fields, network type IN)", raw);
      }
      have_origin = true;
    }
    MediaDescription* m = sd.media.empty() ? nullptr : &sd.media.back();
    PBX_TRY(CheckLine(l, m, line_no, raw));
    (m ? m->lines : sd.session).push_back(std::move(l));
  }
  if (line_no == 0) return Status::InvalidArgument("SDP is empty");
  if (!have_origin) return Status::InvalidArgument("SDP has no o= line");
  return sd;
}

std::string SessionDescription::ToString() const {
  std::string out;
  for (const auto& l : session) AppendLine(out, l.type, l.value);
  for (const auto& m : media) {
    AppendLine(out, 'm', MediaLine(m));
    for (const auto& l : m.lines) AppendLine(out, l.type, l.value);
  }
  return out;
}

std::optional<Connection> SessionDescription::connection() const { return FindConnection(session); }

std::optional<Connection> SessionDescription::ConnectionOf(size_t i) const {
  PBX_CHECK(i < media.size());
  if (auto c = media[i].connection()) return c;
  return connection();
}

Direction SessionDescription::DirectionOf(size_t i) const {
  PBX_CHECK(i < media.size());
  if (auto d = media[i].direction()) return *d;
  return FindDirection(session).value_or(Direction::kSendRecv);
}

bool SessionDescription::IsHold(size_t i) const {
  Direction d = DirectionOf(i);
  if (d == Direction::kSendOnly || d == Direction::kInactive) return true;
  auto c = ConnectionOf(i);
  return c && c->address == "0.0.0.0";
}

Status SessionDescription::Anchor(std::string_view address, std::span<const uint16_t> ports) {
  const char* addr_type = address.find(':') == std::string_view::npos ? "IP4" : "IP6";
  if (!IsIpLiteral(addr_type, address)) {
    return Status::InvalidArgument(
        fmt::format("anchor address '{}' is not an IP literal", address));
  }
  if (ports.size() != media.size()) {
    return Status::InvalidArgument(
        fmt::format("{} anchor ports for {} m= lines", ports.size(), media.size()));
  }
  for (size_t i = 0; i < media.size(); ++i) {
    if (media[i].port != 0 && (ports[i] == 0 || ports[i] == 65535)) {
      return Status::InvalidArgument(fmt::format("anchor port {} for stream {}", ports[i], i));
    }
  }
  const std::string c_value = fmt::format("IN {} {}", addr_type, address);
  for (size_t i = 0; i < media.size(); ++i) {
    MediaDescription& m = media[i];
    bool rfc2543_hold = !m.direction() && !FindDirection(session) && ConnectionOf(i) &&
                        ConnectionOf(i)->address == "0.0.0.0";
    std::erase_if(m.lines, [](const SdpLine& l) {
      return l.type == 'a' && IsIceAttribute(AttrName(l.value));
    });
    RewriteConnections(m.lines, c_value);
    if (m.port != 0) {
      m.port = ports[i];
      m.port_count.reset();  // the relay anchors one RTP/RTCP pair a stream
      for (auto& l : m.lines) {
        if (l.type == 'a' && AttrName(l.value) == "rtcp") {
          l.value = fmt::format("rtcp:{}", ports[i] + 1);
        }
      }
    }
    if (rfc2543_hold) m.SetDirection(Direction::kSendOnly);
  }
  std::erase_if(
      session, [](const SdpLine& l) { return l.type == 'a' && IsIceAttribute(AttrName(l.value)); });
  bool have_c = false;
  for (auto& l : session) {
    if (l.type == 'c') {
      l.value = c_value;
      have_c = true;
    } else if (l.type == 'o') {
      auto f = Fields(l.value);  // Parse checked the six fields
      l.value = fmt::format("{} {} {} IN {} {}", f[0], f[1], f[2], addr_type, address);
    }
  }
  // A session whose streams each had their own c= may have none at session level; every
  // stream now shares one address, so one session-level c= says it for all.
  if (!have_c) {
    auto it = std::find_if(session.begin(), session.end(), [](const SdpLine& l) {
      return std::string_view("btrzka").find(l.type) != std::string_view::npos;
    });
    session.insert(it, SdpLine{'c', c_value});
  }
  return Status::Ok();
}

}  // namespace pbx::media
