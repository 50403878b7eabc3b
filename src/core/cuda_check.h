// CUDA runtime helpers: error checking that names the failing call, an owning device
// buffer, and a probe for a usable device that never raises an error.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "core/error.h"

// SPT_CUDA_CHECK(call): throws spt::Error naming the call, file, line and CUDA's message.
#define SPT_CUDA_CHECK(call)                                                                                   \
  do {                                                                                                         \
    const cudaError_t spt_cuda_status_ = (call);                                                               \
    if (spt_cuda_status_ != cudaSuccess)                                                                       \
      throw ::spt::Error(::spt::message("CUDA call ", #call, " failed at ", __FILE__, ":", __LINE__, ": ",      \
                                        cudaGetErrorName(spt_cuda_status_), " (",                              \
                                        cudaGetErrorString(spt_cuda_status_), ")"));                           \
  } while (0)

namespace spt {

// True when a CUDA device can be used. A missing driver or device answers false, and the
// error the probe leaves in the runtime is cleared so that later calls start clean.
inline bool cuda_available() {
  static const bool available = [] {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return count > 0;
  }();
  return available;
}

// Owning, move-only device allocation of `count` elements of T (uninitialized).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count_ > 0) SPT_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), count_ * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFree(data_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      if (data_ != nullptr) cudaFree(data_);
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return count_; }

  // Copies host elements [0, n) into the buffer, n <= size().
  void upload(const T* host, size_t n) {
    SPT_CHECK(n <= count_, "upload of ", n, " elements into a device buffer of ", count_);
    if (n > 0) SPT_CUDA_CHECK(cudaMemcpy(data_, host, n * sizeof(T), cudaMemcpyHostToDevice));
  }
  // Copies buffer elements [0, n) to the host, n <= size().
  void download(T* host, size_t n) const {
    SPT_CHECK(n <= count_, "download of ", n, " elements from a device buffer of ", count_);
    if (n > 0) SPT_CUDA_CHECK(cudaMemcpy(host, data_, n * sizeof(T), cudaMemcpyDeviceToHost));
  }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace spt
