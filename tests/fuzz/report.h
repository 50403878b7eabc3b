// Tallies of the fuzz run per category and failure class, and the failure report.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fuzz_case.h"
#include "runner.h"

namespace spt::fuzz {

struct Failure {
  int64_t case_id = 0;
  std::string category, mutation, command, outcome, output;
};

class Report {
 public:
  void add_case(const std::string& category) { ++rows_[category].cases; }
  void add_run(const Case& c, const Command& command, const RunResult& result, const Outcome& outcome, bool exec);
  bool failed() const { return !failures_.empty(); }
  // The summary table, the failure classes and the first `shown` failures.
  void print(int shown, const std::string& reproduce) const;

 private:
  struct Row {
    int64_t cases = 0, runs = 0, exec_runs = 0, accepted = 0, refused = 0, failures = 0;
    double seconds = 0;
    std::map<std::string, int64_t> classes;
  };
  std::map<std::string, Row> rows_;
  std::vector<std::string> order_;
  std::vector<Failure> failures_;
};

std::string command_line(const Command& command);

}  // namespace spt::fuzz
