// One fuzz case: a mutated input written into its own directory and the spt command
// lines that must handle it, each with what a correct spt may do with it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spt::fuzz {

// What a correct spt may answer. A mutation that changes the meaning of a checkpoint must
// be refused; one that keeps it (reformatted JSON) may go either way; a valid data file
// must be accepted.
enum class Expect { refuse, accept, either };

struct Command {
  std::vector<std::string> args;   // after the program name: {"eval", "--checkpoint", ...}
  Expect expect = Expect::refuse;
  // A refusal must contain one of these (the mutated file's directory, a key name, ...).
  std::vector<std::string> names;
};

struct Case {
  int64_t id = 0;
  std::string category;
  std::string mutation;  // what was done, for the failure report
  std::string dir;       // the case's directory (removed after the case)
  std::vector<Command> commands;
};

// Deterministic per case: splitmix64 over (seed, case id), so `--case N` rebuilds case N
// alone exactly as the full run built it.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : state_(seed ^ (stream * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull)) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n) { return next() % n; }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1))); }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }
  template <typename T>
  const T& pick(const std::vector<T>& items) { return items[below(items.size())]; }

 private:
  uint64_t state_;
};

}  // namespace spt::fuzz
