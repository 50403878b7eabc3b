// cuBLASLt error checking that names the failing call, like SPT_CUDA_CHECK.
#pragma once

#include <cublasLt.h>

#include "core/error.h"

// SPT_CUBLAS_CHECK(call): throws spt::Error naming the call, file, line and cuBLAS status.
#define SPT_CUBLAS_CHECK(call)                                                                                 \
  do {                                                                                                         \
    const cublasStatus_t spt_cublas_status_ = (call);                                                          \
    if (spt_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                           \
      throw ::spt::Error(::spt::message("cuBLAS call ", #call, " failed at ", __FILE__, ":", __LINE__, ": ",   \
                                        cublasLtGetStatusName(spt_cublas_status_), " (",                       \
                                        cublasLtGetStatusString(spt_cublas_status_), ")"));                    \
  } while (0)
