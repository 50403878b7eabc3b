// Helpers the unit tests share: the message of an expected spt::Error, whole-file reads,
// and running the built `spt` binary with its output captured.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"

namespace spt::testing_support {

// The message of the spt::Error that `f` throws; "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Expects `fn` to throw an spt::Error whose one-line message contains every piece.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string text = e.what();
    EXPECT_EQ(text.find('\n'), std::string::npos) << "message spans lines: " << text;
    for (const std::string& piece : pieces) EXPECT_NE(text.find(piece), std::string::npos) << "'" << piece << "' not in: " << text;
    return;
  }
  ADD_FAILURE() << "no spt::Error thrown";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct CliResult {
  int code = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};

// Runs `spt ARGS` through the shell in `cwd` after the shell commands `setup`, under a 60 s
// timeout; stdout and stderr go through files in `scratch` (a test's temporary directory).
inline CliResult run_spt(const std::string& scratch, const std::string& args, const std::string& setup = "true",
                         const std::string& cwd = "") {
  const std::string out = scratch + "/stdout.txt", err = scratch + "/stderr.txt";
  const std::string command = "cd '" + (cwd.empty() ? scratch : cwd) + "' && " + setup + " && timeout 60 " +
                              std::string(SPT_BINARY) + " " + args + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace spt::testing_support
