#pragma once

#include "node/core/status.h"

namespace pbx::hal {

// The pair's analog lines (FXS phones, FXO and E1/T1 trunks) reach both nodes through a line
// switch: a relay board that connects them to one node at a time. The lines follow the
// virtual IP: the cluster controller calls Take() right after it acquires the VIP and
// Release() right after it lets it go (and on shutdown), on its control thread, so the
// lines and the IP always move together. A node without analog hardware has no switch.
// Drivers (and their simulated twin for tests) come with the analog ports.
class LineSwitch {
 public:
  virtual ~LineSwitch() = default;
  virtual Status Take() = 0;     // connect the lines to this node
  virtual Status Release() = 0;  // disconnect them, so the peer can take them
};

}  // namespace pbx::hal
