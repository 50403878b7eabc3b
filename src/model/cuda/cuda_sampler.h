// The key/value-cache decoder of src/model/sampler.h on one GPU: per step, one row per
// sequence runs through every layer on the device with fp32 weights and activations,
// keys and values are appended to a device cache (fp32), and the new row attends to its
// allowed cached keys in fp32. Only the logits come back to the host, where sample()
// draws the tokens exactly as it does for the CPU decoder.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model.h"
#include "model/sampler.h"

namespace spt::cuda {

class CudaDecoder final : public Decoder {
 public:
  // Copies the model's weights to the device and plans the cache of `count` sequences of
  // `capacity` positions (0: the model's context); throws with the numbers when it does not fit.
  CudaDecoder(const Model& model, int count, int64_t capacity = 0);
  ~CudaDecoder() override;
  CudaDecoder(const CudaDecoder&) = delete;
  CudaDecoder& operator=(const CudaDecoder&) = delete;

  int64_t position() const override;
  const std::vector<float>& step(const uint8_t* previous) override;
  void reset() override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::unique_ptr<Decoder> make_cuda_decoder(const Model& model, int count, int64_t capacity);

}  // namespace spt::cuda
