#include "report.h"

#include <algorithm>
#include <cstdio>

namespace spt::fuzz {

std::string command_line(const Command& command) {
  std::string text = "spt";
  for (const std::string& a : command.args) text += " " + (a.size() > 120 ? a.substr(0, 117) + "..." : a);
  return text;
}

void Report::add_run(const Case& c, const Command& command, const RunResult& result, const Outcome& outcome,
                     bool exec) {
  if (std::find(order_.begin(), order_.end(), c.category) == order_.end()) order_.push_back(c.category);
  Row& row = rows_[c.category];
  ++row.runs;
  row.exec_runs += exec;
  row.seconds += result.seconds;
  if (outcome.verdict == Verdict::accepted) ++row.accepted;
  if (outcome.verdict == Verdict::refused) ++row.refused;
  if (outcome.verdict != Verdict::failure) return;
  ++row.failures;
  ++row.classes[outcome.failure];
  failures_.push_back({c.id, c.category, c.mutation, command_line(command) + (exec ? "  (the spt binary)" : ""),
                       outcome.failure, describe(result)});
}

void Report::print(int shown, const std::string& reproduce) const {
  std::printf("\n%-20s %7s %7s %9s %8s %9s %8s\n", "category", "cases", "runs", "accepted", "refused", "FAILURES",
              "cpu s");
  Row total;
  for (const std::string& name : order_) {
    const Row& r = rows_.at(name);
    std::printf("%-20s %7lld %7lld %9lld %8lld %9lld %8.1f\n", name.c_str(), static_cast<long long>(r.cases),
                static_cast<long long>(r.runs), static_cast<long long>(r.accepted), static_cast<long long>(r.refused),
                static_cast<long long>(r.failures), r.seconds);
    total.cases += r.cases, total.runs += r.runs, total.exec_runs += r.exec_runs, total.accepted += r.accepted;
    total.refused += r.refused, total.failures += r.failures, total.seconds += r.seconds;
  }
  std::printf("%-20s %7lld %7lld %9lld %8lld %9lld %8.1f\n", "total", static_cast<long long>(total.cases),
              static_cast<long long>(total.runs), static_cast<long long>(total.accepted),
              static_cast<long long>(total.refused), static_cast<long long>(total.failures), total.seconds);
  std::printf("(%lld of the runs exec'd the spt binary; the others forked and ran the same CLI code in process)\n",
              static_cast<long long>(total.exec_runs));
  if (failures_.empty()) return;
  std::printf("\nfailure classes (runs):\n");
  for (const std::string& name : order_)
    for (const auto& [what, count] : rows_.at(name).classes)
      std::printf("  %-20s %-52s %6lld\n", name.c_str(), what.c_str(), static_cast<long long>(count));
  std::printf("\nfirst failures of each class (reproduce one with: %s --case N --keep):\n", reproduce.c_str());
  std::map<std::string, int> seen;
  int printed = 0;
  for (const Failure& f : failures_) {
    if (printed >= shown || seen[f.category + f.outcome]++ >= 2) continue;
    ++printed;
    std::printf("- case %lld [%s] %s\n    %s\n    %s: %s\n", static_cast<long long>(f.case_id), f.category.c_str(),
                f.mutation.c_str(), f.command.c_str(), f.outcome.c_str(), f.output.c_str());
  }
}

}  // namespace spt::fuzz
