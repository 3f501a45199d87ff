// qforge/bandwidth.h — measured memory bandwidth of the machine, the denominator of every
// roofline figure qforge prints (decode is bound by reading the weights once per token).
#pragma once
#include <cstddef>

namespace qforge {

// Multi-threaded read bandwidth of host memory over a `bytes` buffer (best of `repeats`), GB/s.
double measure_host_read_bandwidth(size_t bytes = size_t(1) << 30, int repeats = 3);

}  // namespace qforge
