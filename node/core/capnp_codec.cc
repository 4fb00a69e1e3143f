#include "node/core/capnp_codec.h"

#include <cstring>

namespace pbx::capnp_codec {

std::string ToBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::string Printable(std::string_view text) {
  std::string out(text.substr(0, 160));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

namespace detail {

Result<kj::Array<capnp::word>> AlignedWords(std::string_view what, std::string_view bytes,
                                            size_t max_bytes) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return Status::Corruption(
        fmt::format("{} of {} bytes is not a whole number of words", what, bytes.size()));
  }
  if (max_bytes != 0 && bytes.size() > max_bytes) {
    return Status::Corruption(fmt::format("{} of {} bytes is too large", what, bytes.size()));
  }
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  return words;
}

std::string Describe(const kj::Exception& e) {
  return Printable(std::string_view(e.getDescription().begin(), e.getDescription().size()));
}

}  // namespace detail
}  // namespace pbx::capnp_codec
