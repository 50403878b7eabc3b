// `spt gradients`: one batch's loss and gradients, written for independent checks
// (tests/python/test_reference.py compares them with tools/reference/model.py).
//   DIR/model.safetensors  weights: the paper's initialization plus N(0, 0.1) noise on
//                          every element, so no tensor (head, biases) is trivially zero
//   DIR/batch.safetensors  "tokens", U8 (B, T), uniformly random bytes
//   DIR/grads.safetensors  d(mean loss)/d(param), one F32 tensor per parameter
//   DIR/loss.json          {"loss": mean nats over the B*T tokens, "model": config}
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "model/config_json.h"
#include "model/model.h"
#include "train/checkpoint.h"

namespace spt::cli {
namespace {

struct GradientFlags {
  std::string out;
  int batch = 2;
  uint64_t seed = 1;
};

void run(CLI::App* cmd, const ModelFlags& flags, const GradientFlags& f) {
  // The files written here (model.safetensors, ...) must not land in a checkpoint.
  refuse_checkpoint_overwrite(f.out, "--out");
  ModelConfig config;
  TrainConfig train;
  std::string format;
  flags.resolve(cmd, config, train, format);
  SPT_CHECK(f.batch >= 1, "batch ", f.batch, " must be at least 1 (--batch)");
  Model model(config);
  model.init(f.seed);
  const uint64_t noise = rng_key(f.seed, 0x6E6F697365ULL);
  for (size_t e = 0; e < model.weights().size(); ++e) model.weights()[e] += 0.1f * normal01(noise, e);
  const int64_t T = config.ctx;
  std::vector<uint8_t> tokens(static_cast<size_t>(f.batch) * T);  // (B, T)
  const uint64_t token_key = rng_key(f.seed, 0x746F6BULL);
  for (size_t e = 0; e < tokens.size(); ++e) tokens[e] = static_cast<uint8_t>(uniform_int(token_key, e, kVocab));
  model.zero_grads();
  const double loss = model.forward_backward(tokens.data(), f.batch, DropoutContext{}, 1.0f);

  namespace fs = std::filesystem;
  fs::create_directories(f.out);
  save_model_file((fs::path(f.out) / "model.safetensors").string(), model);
  SafetensorsWriter batch;
  batch.add_u8("tokens", {f.batch, T}, tokens.data());
  batch.write_file((fs::path(f.out) / "batch.safetensors").string());
  SafetensorsWriter grads;
  for (const ParamInfo& p : model.params().all()) grads.add_f32(p.name, p.shape, model.grads().data() + p.offset);
  grads.set_metadata("format", "spt-gradients");
  grads.write_file((fs::path(f.out) / "grads.safetensors").string());
  const nlohmann::json summary = {{"loss", loss}, {"model", to_json(config)}, {"batch", f.batch}, {"seed", f.seed}};
  const std::string text = summary.dump(2) + "\n";
  write_file_atomically((fs::path(f.out) / "loss.json").string(),
                        [&](OutputFile& out) { out.write(text.data(), static_cast<int64_t>(text.size())); });
  std::printf("loss %.8f nats over %d x %lld tokens; wrote %s/{model,batch,grads}.safetensors and loss.json\n", loss,
              f.batch, static_cast<long long>(T), f.out.c_str());
}

}  // namespace

void add_gradients_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("gradients", "Write one random batch's loss and gradients (for parity checks)");
  auto flags = std::make_shared<ModelFlags>();
  auto f = std::make_shared<GradientFlags>();
  add_model_flags(cmd, *flags, false);
  cmd->add_option("--out", f->out, "output directory")->required();
  cmd->add_option("--batch", f->batch, "B, sequences in the batch");
  cmd->add_option("--seed", f->seed, "seed of the weights and the tokens");
  cmd->callback([cmd, flags, f] { run(cmd, *flags, *f); });
}

}  // namespace spt::cli
