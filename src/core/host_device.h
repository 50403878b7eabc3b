// SPT_HOST_DEVICE marks functions that compile for the GPU too when the header is included
// from CUDA sources, so host code (and the CPU tests) run exactly what the kernels run.
#pragma once

#if defined(__CUDACC__)
#define SPT_HOST_DEVICE __host__ __device__
#else
#define SPT_HOST_DEVICE
#endif
