// Gradient buckets without a second process: the plan of which ranges go to which rank
// while the backward runs (every gradient reduced exactly once, to its owner, only once
// final), the reducer's use of the communicator (recorded by a fake one), the models'
// reports of final gradients, and the engine's one reducing backward per step.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "dist/bucket_plan.h"
#include "dist/communicator.h"
#include "dist/gradient_reducer.h"
#include "model/model.h"
#include "test_support.h"
#include "train/engine.h"
#include "train/optimizer.h"

namespace spt {
namespace {

using dist::BucketPlan;
using dist::ReducePiece;
using testing_support::contains;
using testing_support::error_of;
using testing_support::random_tokens;
using Bucket = std::vector<ReducePiece>;

// Runs a plan through one backward that reports `readies` (falling), then takes the rest;
// checks every bucket as it comes and returns them all (the rest last, when not empty).
std::vector<Bucket> run_plan(int64_t n, int world, int64_t bucket, const std::vector<int64_t>& readies) {
  BucketPlan plan(n, world, bucket);
  std::vector<Bucket> out;
  std::vector<int> reduced(static_cast<size_t>(n), 0);  // (n) times each gradient went
  auto take = [&](const Bucket& pieces, int64_t final_from, bool backward_done) {
    if (pieces.empty()) return;
    const int64_t begin = pieces.front().begin, end = pieces.back().end;
    EXPECT_GE(begin, final_from) << "a bucket holds gradients not yet final";
    EXPECT_EQ(begin % dist::kShardAlignment, 0) << "bucket [" << begin << ", " << end << ")";
    if (!backward_done) {
      EXPECT_GE(end - begin, bucket) << "a bucket smaller than asked before the end";
    }
    for (size_t i = 0; i < pieces.size(); ++i) {
      const ReducePiece& p = pieces[i];
      const dist::ShardRange owner = dist::shard_range(n, world, p.root);
      EXPECT_LT(p.begin, p.end);
      EXPECT_TRUE(owner.begin <= p.begin && p.end <= owner.end) << "piece [" << p.begin << ", " << p.end
                                                                << ") is not all rank " << p.root << "'s";
      if (i > 0) {
        EXPECT_EQ(p.begin, pieces[i - 1].end) << "the pieces of a bucket leave a gap";
      }
      for (int64_t k = p.begin; k < p.end; ++k) ++reduced[k];
    }
    out.push_back(pieces);
  };
  for (int64_t from : readies) take(plan.ready(from), from, from == 0);
  take(plan.rest(), 0, true);
  for (int64_t k = 0; k < n; ++k) EXPECT_EQ(reduced[k], 1) << "gradient " << k << " of " << n;
  return out;
}

TEST(BucketPlan, OneRankReducesFinalSuffixesOnceABucketWaits) {
  // 1000 gradients, buckets of 256: 960..1000 is too little, then [704, 1000) goes; at 650
  // the aligned start is still 704; [320, 704) goes at 300; the rest at the end.
  const std::vector<Bucket> buckets = run_plan(1000, 1, 256, {900, 700, 650, 300, 0});
  const std::vector<Bucket> expected = {{{704, 1000, 0}}, {{320, 704, 0}}, {{0, 320, 0}}};
  EXPECT_EQ(buckets, expected);
}

TEST(BucketPlan, BucketsAreCutAtTheShardBoundariesOfUnevenShards) {
  // Three ranks over 1000: shards of 384, 384 and 232.
  ASSERT_EQ(dist::shard_range(1000, 3, 2).begin, 768);
  // A bucket across both boundaries, then the rest.
  EXPECT_EQ(run_plan(1000, 3, 200, {900, 100, 0}),
            (std::vector<Bucket>{{{128, 384, 0}, {384, 768, 1}, {768, 1000, 2}}, {{0, 128, 0}}}));
  // Each bucket across one boundary.
  EXPECT_EQ(run_plan(1000, 3, 200, {700, 0}),
            (std::vector<Bucket>{{{704, 768, 1}, {768, 1000, 2}}, {{0, 384, 0}, {384, 704, 1}}}));
  // Two ranks: a bucket across their boundary at 512.
  EXPECT_EQ(run_plan(1000, 2, 600, {300, 0}), (std::vector<Bucket>{{{320, 512, 0}, {512, 1000, 1}}, {{0, 320, 0}}}));
}

TEST(BucketPlan, ABucketLargerThanTheParametersGoesWholeAtTheEnd) {
  const std::vector<Bucket> buckets = run_plan(1000, 3, 5000, {900, 500, 10, 0});
  const std::vector<Bucket> expected = {{{0, 384, 0}, {384, 768, 1}, {768, 1000, 2}}};
  EXPECT_EQ(buckets, expected);
}

TEST(BucketPlan, AJumpOverSeveralBucketsSendsAllThatWaitsAsOne) {
  EXPECT_EQ(run_plan(1000, 2, 64, {100, 0}),
            (std::vector<Bucket>{{{128, 512, 0}, {512, 1000, 1}}, {{0, 128, 0}}}));
}

TEST(BucketPlan, TheRestGoesWhenTheBackwardEndsWithoutSayingSo) {
  EXPECT_EQ(run_plan(1000, 2, 100, {500}), (std::vector<Bucket>{{{512, 1000, 1}}, {{0, 512, 0}}}));
  // Nothing reported at all: everything at the end.
  EXPECT_EQ(run_plan(200, 2, 100, {}), (std::vector<Bucket>{{{0, 128, 0}, {128, 200, 1}}}));
}

TEST(BucketPlan, EmptyShardsGetNoPieces) {
  // 65 values over 3 ranks: shards [0, 64), [64, 65) and an empty one.
  EXPECT_EQ(run_plan(65, 3, 1, {64, 0}), (std::vector<Bucket>{{{64, 65, 1}}, {{0, 64, 0}}}));
  EXPECT_TRUE(run_plan(0, 2, 1, {0}).empty());
}

TEST(BucketPlan, ManyBackwardsEachGradientOnceToItsOwner) {
  for (uint64_t trial = 0; trial < 200; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(uniform_int(1, trial, 5000));
    const int world = 1 + static_cast<int>(uniform_int(2, trial, 5));
    const int64_t bucket = 1 + static_cast<int64_t>(uniform_int(3, trial, 2000));
    std::vector<int64_t> readies;
    for (int64_t from = n; from > 0;) {
      from -= static_cast<int64_t>(uniform_int(4, trial * 100 + readies.size(), 700));
      readies.push_back(std::max<int64_t>(from, 0));
      if (from <= 0) break;
    }
    if (trial % 3 == 0) readies.pop_back();  // some backwards never say 0
    SCOPED_TRACE("n " + std::to_string(n) + ", world " + std::to_string(world) + ", bucket " + std::to_string(bucket));
    run_plan(n, world, bucket, readies);
  }
}

TEST(BucketPlan, BadUseIsRefused) {
  BucketPlan plan(1000, 2, 64);
  plan.ready(500);
  EXPECT_TRUE(contains(error_of([&] { plan.ready(600); }), "growing suffix"));
  EXPECT_TRUE(contains(error_of([] { BucketPlan(10, 2, 0); }), "at least one float"));
  EXPECT_TRUE(contains(error_of([] { dist::bucket_floats(-1); }), "--bucket-mib"));
  EXPECT_EQ(dist::bucket_floats(25), 25 * 262144);
  EXPECT_EQ(dist::bucket_floats(0), 0);
  EXPECT_EQ(dist::bucket_floats(1e-12), 1);
  EXPECT_GT(dist::bucket_floats(1e300), int64_t{1} << 50);
}

// Records what the reducer asks of its communicator.
class RecordingCommunicator final : public dist::Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 2; }
  std::string describe() const override { return "recording"; }
  bool device_buffers() const override { return false; }
  void all_reduce_sum(float*, int64_t) override { log.push_back("all_reduce"); }
  void reduce_scatter(float*, int64_t n) override { log.push_back("reduce_scatter " + std::to_string(n)); }
  void all_gather(float*, int64_t) override { log.push_back("all_gather"); }
  void broadcast(float*, int64_t, int) override { log.push_back("broadcast"); }
  void reduce_to_roots(float*, const std::vector<ReducePiece>& bucket) override {
    std::string text = "bucket";
    for (const ReducePiece& p : bucket) text += message(" [", p.begin, ", ", p.end, ")->", p.root);
    log.push_back(text);
  }
  void progress_reductions() override { log.push_back("progress"); }
  void wait_reductions() override { log.push_back("wait"); }
  void all_reduce_sum_host(double*, int64_t) override {}
  void broadcast_host(void*, int64_t, int) override {}
  void barrier() override {}
  std::vector<std::string> log;
};

TEST(GradientReducer, WithoutAnArmedBackwardTheStepReduceScatters) {
  RecordingCommunicator comm;
  std::vector<float> grads(1000);  // (n)
  dist::GradientReducer reducer(comm, 1000, 100);
  EXPECT_EQ(reducer.take_hook(), nullptr);
  reducer.finish(grads.data());
  dist::GradientReducer none(comm, 1000, 0);
  none.arm(grads.data());
  EXPECT_EQ(none.take_hook(), nullptr);
  none.finish(grads.data());
  EXPECT_EQ(comm.log, (std::vector<std::string>{"reduce_scatter 1000", "reduce_scatter 1000"}));
  EXPECT_TRUE(contains(none.describe(), "after the backward"));
  EXPECT_TRUE(contains(dist::GradientReducer(comm, 1000, 6553600).describe(), "buckets of 25 MiB"));
}

TEST(GradientReducer, AnArmedBackwardReducesBucketsThenTheStepWaits) {
  RecordingCommunicator comm;
  std::vector<float> grads(1000);  // (n)
  dist::GradientReducer reducer(comm, 1000, 300);
  reducer.arm(grads.data());
  const auto* hook = reducer.take_hook();
  ASSERT_NE(hook, nullptr);
  (*hook)(900);
  (*hook)(400);
  EXPECT_TRUE(contains(error_of([&] { reducer.take_hook(); }), "--accumulate"));
  (*hook)(200);
  reducer.finish(grads.data());
  EXPECT_EQ(comm.log, (std::vector<std::string>{"progress", "bucket [448, 512)->0 [512, 1000)->1", "progress",
                                                "bucket [0, 448)->0", "wait"}));
  // The next step starts over; a backward that sends everything at once is a reduce-scatter.
  comm.log.clear();
  reducer.arm(grads.data());
  (*reducer.take_hook())(0);
  reducer.finish(grads.data());
  EXPECT_EQ(comm.log, (std::vector<std::string>{"reduce_scatter 1000", "wait"}));
}

TEST(GradientReducer, AnAbandonedStepWaitsForWhatWentAndForgetsTheRest) {
  RecordingCommunicator comm;
  std::vector<float> grads(1000);  // (n)
  dist::GradientReducer reducer(comm, 1000, 100);
  reducer.arm(grads.data());
  (*reducer.take_hook())(500);
  reducer.abandon();
  EXPECT_EQ(comm.log, (std::vector<std::string>{"bucket [512, 1000)->1", "wait"}));
  EXPECT_EQ(reducer.take_hook(), nullptr);
}

// The hook's promise: when it says [from, P) is final, those gradients are the backward's
// last word. Heard after the head and ln_f, after each block from the last, and at the end.
TEST(GradientBuckets, TheCpuModelReportsOnlyFinalGradients) {
  Model model(testing_support::small_strided_config(32));
  model.init(3);
  const std::vector<uint8_t> tokens = random_tokens(2 * 16, 5);  // (2, T)
  std::vector<int64_t> froms;
  std::vector<std::vector<float>> seen;  // the final suffix at each report
  const GradientsReady hook = [&](int64_t from) {
    froms.push_back(from);
    seen.emplace_back(model.grads().begin() + from, model.grads().end());
  };
  model.zero_grads();
  model.forward_backward(tokens.data(), 2, DropoutContext{}, 1.0f, &hook);
  const ParamTable& table = model.params();
  EXPECT_EQ(froms, (std::vector<int64_t>{table.find("ln_f.weight").offset, table.find("blocks.1.ln1.weight").offset,
                                         table.find("blocks.0.ln1.weight").offset, 0}));
  for (size_t i = 0; i < froms.size(); ++i)
    EXPECT_EQ(seen[i], std::vector<float>(model.grads().begin() + froms[i], model.grads().end())) << "report " << i;
}

// The engine reduces during the last micro-batch's backward only; the same bits either way
// (the stand-in's collectives return their input).
TEST(GradientBuckets, TheEngineReducesDuringTheLastMicroBatchOnly) {
  const std::vector<uint8_t> tokens = random_tokens(2 * 16, 6);  // two micro-batches (1, T)
  std::vector<std::vector<float>> weights;
  for (int64_t bucket : {int64_t{0}, int64_t{64}}) {
    Model model(testing_support::small_strided_config(32));
    model.init(4);
    const int64_t n = model.params().total();
    const std::unique_ptr<dist::Communicator> comm = dist::make_local_stand_in(0, 2);
    const dist::ShardRange s = dist::shard_range(n, 2, 0);
    OptimizerState shard(s.size(), s.begin);
    const std::unique_ptr<Engine> engine = make_engine({"cpu", "", true, false, comm.get(), bucket}, model, &shard);
    for (int step = 0; step < 2; ++step) {
      engine->zero_grads();
      engine->forward_backward(tokens.data(), 1, DropoutContext{}, 0.5f);
      engine->reduce_during_next_backward();
      engine->forward_backward(tokens.data() + 16, 1, DropoutContext{}, 0.5f);
      if (bucket > 0) {
        EXPECT_TRUE(contains(error_of([&] { engine->forward_backward(tokens.data(), 1, DropoutContext{}, 0.5f); }),
                             "only the last micro-batch"));
      }
      engine->step(TrainConfig{}, 1e-3, 1.0f);
    }
    weights.push_back(model.weights());
  }
  EXPECT_EQ(weights[0], weights[1]);
}

}  // namespace
}  // namespace spt
