// spt_fuzz: feeds spt thousands of seeded mutations of its file inputs (checkpoints, data
// sets, --config files) and fails unless every one ends in an acceptance the oracle allows
// or a one-line `spt: error:` refusal naming the file or value: no crash, no hang, no
// allocation of a forged size within the memory limit, no silent acceptance.
//
//   spt_fuzz --spt build/spt [--seed N] [--jobs N] [--case N] [--category NAME] [--keep]
//            [--timeout S] [--scale F] [--exec-every K] [--show N]
// SPT_FUZZ_SEED and SPT_FUZZ_JOBS set the seed and the parallel children when the flags
// are not given. Exit status: 0 when nothing failed, 1 on any failure, 2 on a usage or
// setup error.
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "base.h"
#include "core/cpu_runtime.h"
#include "files.h"
#include "generators.h"
#include "report.h"
#include "runner.h"

namespace spt::fuzz {
namespace {

constexpr uint64_t kDefaultSeed = 20261201;

struct Options {
  std::string binary, category;
  uint64_t seed = kDefaultSeed;
  int jobs = 2, exec_every = 16, show = 25;
  int64_t only_case = -1;
  double scale = 1;
  bool keep = false;
  Limits limits;
};

Options parse_options(int argc, char** argv) {
  Options o;
  if (const char* s = std::getenv("SPT_FUZZ_SEED")) o.seed = std::strtoull(s, nullptr, 10);
  if (const char* j = std::getenv("SPT_FUZZ_JOBS")) o.jobs = std::atoi(j);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--spt") o.binary = value();
    else if (a == "--seed") o.seed = std::stoull(value());
    else if (a == "--jobs") o.jobs = std::stoi(value());
    else if (a == "--case") o.only_case = std::stoll(value());
    else if (a == "--category") o.category = value();
    else if (a == "--keep") o.keep = true;
    else if (a == "--timeout") o.limits.timeout_s = std::stod(value());
    else if (a == "--scale") o.scale = std::stod(value());
    else if (a == "--exec-every") o.exec_every = std::stoi(value());
    else if (a == "--show") o.show = std::stoi(value());
    else throw std::runtime_error("unknown option " + a);
  }
  if (o.binary.empty()) throw std::runtime_error("give the spt executable with --spt PATH");
  o.jobs = std::max(1, o.jobs);
  return o;
}

// One case id per (category, index); the scale multiplies the random categories.
struct Planned {
  int64_t id, index;
  const Category* category;
};

std::vector<Planned> plan(const std::vector<Category>& all, const Options& o) {
  std::vector<Planned> cases;
  int64_t id = 0;
  for (const Category& c : all) {
    const bool special = std::strstr(c.name, "special") != nullptr;
    const int64_t count = special ? c.count : std::max<int64_t>(1, static_cast<int64_t>(c.count * o.scale));
    for (int64_t k = 0; k < count; ++k, ++id)
      if ((o.only_case < 0 || o.only_case == id) && (o.category.empty() || o.category == c.name))
        cases.push_back({id, k, &c});
  }
  return cases;
}

struct Slot {
  Case c;
  size_t next = 0;
  bool exec = false;
  std::unique_ptr<Child> child;
};

class Driver {
 public:
  Driver(const Options& o, const Base& base) : o_(o), base_(base) {}

  void run(const std::vector<Planned>& cases) {
    std::vector<Slot> slots(static_cast<size_t>(o_.jobs));
    size_t next_case = 0;
    for (;;) {
      for (Slot& s : slots)
        if (!s.child && next_case < cases.size()) start_case(s, cases[next_case++]);
      std::vector<pollfd> fds;
      std::vector<Slot*> owners;
      auto wait_ms = 200;
      const auto now = std::chrono::steady_clock::now();
      for (Slot& s : slots) {
        if (!s.child) continue;
        fds.push_back({s.child->fd(), POLLIN, 0});
        owners.push_back(&s);
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(s.child->deadline() - now).count();
        wait_ms = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(wait_ms, left + 1)));
      }
      if (fds.empty()) break;
      poll(fds.data(), fds.size(), wait_ms);
      for (size_t k = 0; k < fds.size(); ++k) {
        Slot& s = *owners[k];
        const bool late = std::chrono::steady_clock::now() > s.child->deadline();
        if (fds[k].revents != 0 && s.child->read_some() && !late) continue;
        if (fds[k].revents == 0 && !late) continue;
        finish_run(s, s.child->finish(late));
      }
    }
  }

  const Report& report() const { return report_; }

 private:
  void start_case(Slot& s, const Planned& p) {
    s.c = Case{};
    s.c.id = p.id;
    s.c.category = p.category->name;
    s.c.dir = base_.root + "/case-" + std::to_string(p.id);
    std::filesystem::create_directories(s.c.dir);
    Rng rng(o_.seed, static_cast<uint64_t>(p.id));
    p.category->make(base_, rng, p.index, s.c);
    report_.add_case(s.c.category);
    s.next = 0;
    start_command(s);
  }

  void start_command(Slot& s) {
    const Command& command = s.c.commands[s.next];
    s.exec = o_.exec_every > 0 && (s.c.id * 3 + static_cast<int64_t>(s.next)) % o_.exec_every == 0;
    s.child = std::make_unique<Child>(command.args, s.exec ? o_.binary : std::string(), o_.limits);
  }

  void finish_run(Slot& s, const RunResult& result) {
    s.child.reset();
    const Command& command = s.c.commands[s.next];
    const Outcome outcome = classify(command, result);
    report_.add_run(s.c, command, result, outcome, s.exec);
    if (o_.only_case >= 0)
      std::printf("case %lld [%s] %s\n  %s\n  -> %s%s\n", static_cast<long long>(s.c.id), s.c.category.c_str(),
                  s.c.mutation.c_str(), command_line(command).c_str(), describe(result).c_str(),
                  outcome.verdict == Verdict::failure ? ("\n  FAILURE: " + outcome.failure).c_str() : "");
    // After a hang the rest of the case would mostly wait for the deadline again.
    if (!result.timed_out && ++s.next < s.c.commands.size()) return start_command(s);
    if (!o_.keep) remove_tree(s.c.dir);
  }

  const Options& o_;
  const Base& base_;
  Report report_;
};

// Single-threaded BLAS and OpenMP in every child (two children share the two cores of a
// CI machine), set before the libraries start: the process restarts once to apply them.
void settle_environment(char** argv) {
  bool changed = false;
  for (const char* name : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"})
    if (std::getenv(name) == nullptr) changed = setenv(name, "1", 1) == 0;
  spt::cpu::reexec_with_cpu_runtime_settings(argv);
  if (changed) execv("/proc/self/exe", argv);
}

int fuzz_main(int argc, char** argv) {
  settle_environment(argv);
  const Options o = parse_options(argc, argv);
  std::string root = (std::filesystem::temp_directory_path() / "spt-fuzz-XXXXXX").string();
  if (mkdtemp(root.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory");
  const auto start = std::chrono::steady_clock::now();
  std::printf("spt input fuzz: seed %llu (SPT_FUZZ_SEED), %d parallel children, memory limit %lld MiB, deadline %.0f s"
              ", work directory %s\n", static_cast<unsigned long long>(o.seed), o.jobs,
              static_cast<long long>(o.limits.address_space >> 20), o.limits.timeout_s, root.c_str());
  const Base base = build_base(root, o.binary, o.limits);
  const std::vector<Category> all = categories();
  const std::vector<Planned> cases = plan(all, o);
  if (cases.empty()) throw std::runtime_error("no case matches --case / --category");
  Driver driver(o, base);
  driver.run(cases);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string reproduce = std::string(argv[0]) + " --spt " + o.binary + " --seed " + std::to_string(o.seed) +
                                (o.scale != 1 ? " --scale " + std::to_string(o.scale) : "");
  driver.report().print(o.show, reproduce);
  std::printf("\n%zu cases in %.1f s: %s\n", cases.size(), seconds,
              driver.report().failed() ? "FAILED" : "every input handled");
  if (!o.keep) remove_tree(root);
  else std::printf("kept %s\n", root.c_str());
  return driver.report().failed() ? 1 : 0;
}

}  // namespace
}  // namespace spt::fuzz

int main(int argc, char** argv) {
  try {
    return spt::fuzz::fuzz_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spt_fuzz: %s\n", e.what());
    return 2;
  }
}
