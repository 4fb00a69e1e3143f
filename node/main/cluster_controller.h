#pragma once

#include <functional>
#include <memory>
#include <string>

#include "hal/line_switch.h"
#include "node/admin/api_server.h"
#include "node/core/status.h"
#include "node/main/bootstrap_config.h"
#include "node/main/write_gate.h"
#include "replication/store/state_store.h"
#include "replication/store/wal.h"

namespace pbx::node {

// LocalStore key: set (durably, before the epoch bump) when this node promotes, and when its
// DB holds writes from before it joined the pair; cleared by a full resync. While it is set,
// the node's WAL may hold writes the other node never saw, so the active sends it a
// checkpoint instead of streaming.
inline constexpr char kWasActiveKey[] = "cluster/was_active";

// One node of a pair: runs the role machine (node/cluster/role.h) on its own control thread
// (witness calls on a second one, so that a slow witness never delays a heartbeat) and
// carries out what it decides: heartbeats, witness leases, the virtual IP (and the analog
// lines with it), the log
// shipper (active) or receiver (follower), the epoch, and whether the node's own writes
// pass the WriteGate.
// Thread-safe: Status(), Switchover() and Maintenance() may be called from any thread
// (the API's). `db`, `local` and `gate` must outlive this object.
class ClusterController {
 public:
  // Called each time the node starts serving, after the gate opened (first-boot
  // provisioning, and later the subsystems that serve), on a thread of its own so that it
  // may take seconds; two calls never overlap, and Stop() waits for the last one.
  using ServingHook = std::function<void()>;

  // `lines`: the analog lines' switch, moved with the VIP; nullptr without analog hardware.
  // It must outlive this object.
  static Result<std::unique_ptr<ClusterController>> Start(const BootstrapConfig& config,
                                                          store::ReplicatedDb& db,
                                                          store::LocalStore& local, WriteGate& gate,
                                                          ServingHook on_serving,
                                                          hal::LineSwitch* lines = nullptr);
  virtual ~ClusterController() = default;

  // Fences (closes the gate, releases VIP and lease), stops the log and the heartbeats.
  // Idempotent.
  virtual void Stop() = 0;

  virtual std::string role() const = 0;
  // Whether this node is active within its serving license right now.
  virtual bool Serving() const = 0;
  virtual std::string role_reason() const = 0;
  virtual admin::ClusterStatus Snapshot() const = 0;

  // pbxctl switchover / maintenance: returns once the role machine took the request, or
  // Unavailable with its reason when it cannot be done now.
  virtual pbx::Status Switchover() = 0;
  virtual pbx::Status Maintenance(bool on, bool force) = 0;
};

}  // namespace pbx::node
