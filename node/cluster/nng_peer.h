#pragma once

#include <string>

#include <nng/nng.h>

namespace pbx::cluster {

// "10.0.0.2:51234" (or "[fd00::2]:51234") for the TCP peer that sent `msg`, "?" when NNG does
// not know: for log lines about what a peer sent.
std::string PeerOf(nng_msg* msg);

}  // namespace pbx::cluster
