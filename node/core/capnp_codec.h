#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/array.h>
#include <kj/exception.h>

#include "node/core/status.h"

// Where bytes from the network or the disk become Cap'n Proto readers, and back. Cap'n Proto
// throws kj::Exception on malformed input; Decode turns it into Corruption, and it goes no
// further (STYLE.md §5).
namespace pbx::capnp_codec {

std::string ToBytes(capnp::MessageBuilder& message);

// Text::Reader needs a NUL after the text, which std::string keeps (std::string_view does
// not promise one).
inline capnp::Text::Reader AsText(const std::string& s) {
  return capnp::Text::Reader(s.c_str(), s.size());
}
inline std::string FromText(capnp::Text::Reader text) {
  return std::string(text.begin(), text.size());
}

// Cap'n Proto's descriptions quote bytes of the input; they go to logs and back to peers,
// so control characters are masked and the length is bounded.
std::string Printable(std::string_view text);

struct DecodeLimits {
  size_t max_bytes = 0;          // larger input is refused unread; 0: no bound
  uint64_t traversal_words = 0;  // 0: the input's own size (an honest message is read once,
                                 // the limit stops pointer loops that amplify small input)
  int nesting = 8;
  bool exact = true;  // trailing bytes after the message are an error
};

namespace detail {
// The input copied into word-aligned memory (NNG bodies and RocksDB values promise no
// alignment), or why it cannot be a message.
Result<kj::Array<capnp::word>> AlignedWords(std::string_view what, std::string_view bytes,
                                            size_t max_bytes);
std::string Describe(const kj::Exception& e);
}  // namespace detail

// Reads `bytes` as one message with root `Root` and passes its reader to `read`, which copies
// out what it needs (the reader is gone when Decode returns) and returns a Result or Status.
// `what` names the input in errors: "heartbeat" gives "undecodable heartbeat: ...".
template <typename Root, typename Read>
auto Decode(std::string_view what, std::string_view bytes, const DecodeLimits& limits, Read&& read)
    -> decltype(read(std::declval<typename Root::Reader>())) {
  PBX_ASSIGN_OR_RETURN(kj::Array<capnp::word> words,
                       detail::AlignedWords(what, bytes, limits.max_bytes));
  capnp::ReaderOptions options;
  options.traversalLimitInWords = limits.traversal_words ? limits.traversal_words : words.size();
  options.nestingLimit = limits.nesting;
  try {
    capnp::FlatArrayMessageReader message(words.asPtr(), options);
    if (limits.exact && message.getEnd() != words.end()) {
      return Status::Corruption(fmt::format("trailing bytes after the {}", what));
    }
    return std::forward<Read>(read)(message.getRoot<Root>());
  } catch (const kj::Exception& e) {
    return Status::Corruption(fmt::format("undecodable {}: {}", what, detail::Describe(e)));
  }
}

}  // namespace pbx::capnp_codec
