#pragma once

#include <signal.h>

#include <string>

#include <sys/types.h>

#include "node/core/status.h"

// What pbxd and pbx-witness share as daemons: stop signals and the run files they write.
namespace pbx::daemon {

// Blocks SIGINT and SIGTERM and ignores SIGPIPE. Call it before any thread starts, so every
// thread inherits the mask and only WaitForStopSignal sees the signals.
sigset_t BlockStopSignals();
// Waits for one of `signals`; returns its name ("SIGINT", "SIGTERM").
const char* WaitForStopSignal(const sigset_t& signals);

// Writes `content` to `path` through a temporary file, fsync and rename, so that a reader
// never sees half a file.
Status WriteFileAtomically(const std::string& path, const std::string& content, mode_t mode);

}  // namespace pbx::daemon
