// Error reporting: every bad input becomes an spt::Error with a one-line message
// that names the bad value and, where there is one, the fix.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace spt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename First, typename... Rest>
void append(std::ostringstream& out, const First& first, const Rest&... rest) {
  out << first;
  append(out, rest...);
}
}  // namespace detail

// Builds a message from streamable pieces: spt::message("stride ", l, " must divide ", T).
template <typename... Parts>
std::string message(const Parts&... parts) {
  std::ostringstream out;
  detail::append(out, parts...);
  return out.str();
}

}  // namespace spt

// SPT_CHECK(cond, pieces...): throws spt::Error(pieces...) when cond is false.
#define SPT_CHECK(cond, ...)                               \
  do {                                                     \
    if (!(cond)) throw ::spt::Error(::spt::message(__VA_ARGS__)); \
  } while (0)
