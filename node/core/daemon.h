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

// Puts the calling thread, and so every thread it creates afterwards, under SCHED_RR at
// `priority` (1-99), as Asterisk's -p does: a replicated commit crosses five threads, and
// on a loaded box each hand-off at normal priority may wait for a time slice (replication
// lag p99 25 ms vs 1.3 ms, bench/RESULTS.md). Call before any thread starts. The kernel's
// RT throttling (sched_rt_runtime_us) still leaves other processes 5 % of each CPU.
Status UseRealtimeScheduling(int priority);

// Writes `content` to `path` through a temporary file, fsync and rename, so that a reader
// never sees half a file.
Status WriteFileAtomically(const std::string& path, const std::string& content, mode_t mode);

}  // namespace pbx::daemon
