// qforge/status.h — the one error type of the library.
// Every failure the user can cause (bad file, bad flag, unsupported model, out of memory) throws
// qforge::Error with a one-line message that names the file/tensor/flag and the problem; the CLI
// prints it and exits non-zero. Programming errors use QF_CHECK, which records file and line.
#pragma once
#include <stdexcept>
#include <string>

namespace qforge {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

[[noreturn]] void fail_check(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace qforge

// Internal invariant check: throws qforge::Error("internal error at file:line: expr (msg)").
#define QF_CHECK(cond, msg)                                            \
  do {                                                                 \
    if (!(cond)) ::qforge::fail_check(#cond, __FILE__, __LINE__, msg); \
  } while (0)
