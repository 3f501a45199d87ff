// backends/backend.cpp — the default implementations of Backend's composite ops (ops a backend may
// fuse; the defaults express them through the fixed op set).
#include "backends/backend.h"

namespace qforge {

void Backend::mlp(const Linear& gate, const Linear& up, const Linear& down, const LinearInput& in, int64_t n,
                  float* gate_out, float* up_out, float* y, bool accumulate) {
  const Linear* gate_up[] = {&gate, &up};
  float* gate_up_out[] = {gate_out, up_out};
  linear(gate_up, in, n, gate_up_out, false);
  const Linear* down_l[] = {&down};
  float* y_out[] = {y};
  linear(down_l, {gate_out, nullptr, 0, up_out}, n, y_out, accumulate);
}

}  // namespace qforge
