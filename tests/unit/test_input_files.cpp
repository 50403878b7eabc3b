// Reading untrusted input files: non-regular files are refused without blocking, read
// errors name the file and the reason, and a gzip IDX file is inflated only up to the
// size its header declares.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/file_read.h"
#include "io/input_file.h"
#include "temp_dir.h"
#include "test_support.h"

namespace spt {
namespace {

using testing_support::TempDir;

std::string error_of_read(const std::string& path) {
  return testing_support::error_of([&] { read_file_bytes(path); });
}

TEST(InputFile, NonRegularFilesAreRefusedWithoutBlocking) {
  TempDir dir("input");
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(error_of_read(dir / "fifo").find("cannot read '" + (dir / "fifo") + "': it is a FIFO"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(error_of_read("/dev/null").find("a character device"), std::string::npos);
  EXPECT_NE(error_of_read(dir.path()).find("it is a directory"), std::string::npos);
  EXPECT_NE(error_of_read(dir / "missing").find("No such file or directory"), std::string::npos);
  EXPECT_THROW(read_text_file(dir / "fifo"), Error);
  EXPECT_THROW(load_dataset("bytes", dir / "fifo"), Error);
}

TEST(InputFile, RegularFilesReadWhole) {
  TempDir dir("input");
  testing_support::write_bytes(dir / "f", {'a', 'b', 'c'});
  EXPECT_EQ(read_file_bytes(dir / "f"), (std::vector<uint8_t>{'a', 'b', 'c'}));
  EXPECT_EQ(read_text_file(dir / "f"), "abc");
  EXPECT_GT(physical_memory_bytes(), int64_t{1} << 20);
}

TEST(InputFile, FilesLargerThanTheAddressSpaceLimitAreRefusedUnread) {
  TempDir dir("input");
  testing_support::write_bytes(dir / "big", {'x'});
  ASSERT_EQ(truncate((dir / "big").c_str(), int64_t{3} << 30), 0);  // sparse
  // In a child: the limit (ulimit -v) must not constrain this test process.
  const pid_t child = fork();
  if (child == 0) {
    const rlimit limit{rlim_t{1} << 30, rlim_t{1} << 30};
    setrlimit(RLIMIT_AS, &limit);
    const bool under = memory_limit_bytes() < (int64_t{1} << 30);
    const std::string message = error_of_read(dir / "big");
    const bool named = message.find("cannot read '" + (dir / "big") + "': its 3221225472 bytes exceed the ") == 0;
    _exit(under && named && message.find("ulimit -v") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_GE(memory_limit_bytes(), int64_t{1} << 20);
  EXPECT_LE(memory_limit_bytes(), physical_memory_bytes());
}

std::vector<uint8_t> idx_header(uint32_t count, uint32_t rows, uint32_t cols) {
  std::vector<uint8_t> header;
  for (uint32_t word : {0x803u, count, rows, cols})
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<uint8_t>(word >> shift));
  return header;
}

// A gzip file of `header` followed by `zeros` zero bytes, written in pieces.
void write_gzip(const std::string& path, const std::vector<uint8_t>& header, int64_t zeros) {
  gzFile file = gzopen(path.c_str(), "wb9");
  ASSERT_NE(file, nullptr);
  gzwrite(file, header.data(), static_cast<unsigned>(header.size()));
  const std::vector<uint8_t> chunk(1 << 20, 0);
  for (int64_t left = zeros; left > 0; left -= static_cast<int64_t>(chunk.size()))
    gzwrite(file, chunk.data(), static_cast<unsigned>(std::min<int64_t>(left, chunk.size())));
  ASSERT_EQ(gzclose(file), Z_OK);
}

TEST(InputFile, GzipIdxStopsInflatingAtTheDeclaredSize) {
  TempDir dir("input");
  // Header: 120 images of 28x28 (94 KB), but the stream inflates to 32 MiB.
  write_gzip(dir / "train-images-idx3-ubyte.gz", idx_header(120, 28, 28), int64_t{32} << 20);
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_header(2, 28, 28), 2 * 784);
  const auto start = std::chrono::steady_clock::now();
  testing_support::expect_error([&] { load_dataset("idx", dir.path()); },
                                {"inflates to more than the 94096 bytes expected"});
  // Stopping at the declared size takes milliseconds.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(read_gzip_bytes(dir / "t10k-images-idx3-ubyte.gz", 16 + 2 * 784).size(), 16u + 2 * 784);
  EXPECT_THROW(read_gzip_bytes(dir / "t10k-images-idx3-ubyte.gz", 16 + 2 * 784 - 1), Error);
}

TEST(InputFile, GzipIdxDeclaringMoreThanDeflateCanHoldIsRefusedUnread) {
  TempDir dir("input");
  write_gzip(dir / "train-images-idx3-ubyte.gz", idx_header(0x7fffffff, 28, 28), 784);
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_header(2, 28, 28), 2 * 784);
  testing_support::expect_error([&] { load_dataset("idx", dir.path()); }, {"compressed bytes can hold"});
}

}  // namespace
}  // namespace spt
