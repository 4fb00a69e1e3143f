#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "node/core/status.h"
#include "node/main/bootstrap_config.h"

namespace pbx::node {

// One running node: its stores, the REST API, and (as later subsystems arrive) SIP, media,
// hal and the cluster role machine. Built and torn down on the main thread.
class Node {
 public:
  virtual ~Node() = default;
  // Opens the stores under config.data_dir (creating them on first boot), starts every
  // subsystem and writes RUN_DIR/ready.json once all of them listen.
  static Result<std::unique_ptr<Node>> Start(const BootstrapConfig& config);
  // Stops the subsystems, removes ready.json and flushes the stores. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace pbx::node
