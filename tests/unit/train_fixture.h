// The fixture of the training-loop tests: a 24 KB text with structure in a fresh
// directory, and a small, fast run over it.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/rng.h"
#include "train/trainer.h"

namespace spt::testing_support {

namespace fs = std::filesystem;

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spt_train_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Text with structure (repeated words) and some noise, 24 KB.
    std::string text;
    const char* words[] = {"the ", "light ", "of ", "day ", "and ", "night ", "was ", "good. "};
    for (int i = 0; text.size() < 24000; ++i) {
      text += words[uniform_int(3, i, 8)];
      if (i % 11 == 0) text += static_cast<char>('A' + uniform_int(4, i, 26));
    }
    std::ofstream(dir_ / "text.txt", std::ios::binary) << text;
  }
  void TearDown() override { fs::remove_all(dir_); }

  TrainRun small_run(const std::string& out) const {
    TrainRun run;
    run.model.layers = 2;
    run.model.width = 32;
    run.model.heads = 2;
    run.model.ctx = 32;
    run.model.pattern = "fixed";
    run.model.stride = 8;
    run.model.summary = 2;
    run.model.dropout = 0.1;
    run.model.pos_sizes = {4, 8};
    run.train.batch = 3;
    run.train.accumulate = 2;
    run.train.steps = 6;
    run.train.warmup = 2;
    run.train.lr = 3e-3;
    run.train.eval_every = 2;
    run.train.eval_batches = 4;
    run.train.save_every = 2;
    run.data_format = "bytes";
    run.data_path = (dir_ / "text.txt").string();
    run.out_dir = (dir_ / out).string();
    run.log_every = 1000;
    return run;
  }

  fs::path dir_;
};

}  // namespace spt::testing_support
