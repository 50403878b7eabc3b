#include "io/byte_source.h"

#include "core/error.h"
#include "io/input_file.h"

#ifdef SPT_HAVE_LIBZIP
#include <zip.h>
#endif

namespace spt {
namespace {

class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path) : file_(path) {}
  const std::string& name() const override { return file_.path(); }
  int64_t size() const override { return file_.size(); }
  void read_exact(void* data, int64_t bytes) override {
    SPT_CHECK(bytes <= file_.size() - done_, "cannot read '", name(), "': it ends after ", file_.size(),
              " bytes, ", bytes, " more were expected at byte ", done_);
    file_.read_exact(data, bytes);
    done_ += bytes;
  }
  void check_end() override {
    SPT_CHECK(done_ == file_.size(), "'", name(), "' holds ", file_.size() - done_, " bytes after the ", done_,
              " expected");
  }

 private:
  InputFile file_;
  int64_t done_ = 0;
};

#ifdef SPT_HAVE_LIBZIP

class ZipMember : public ByteSource {
 public:
  ZipMember(const std::string& path, const std::string& member) : name_(path + ":" + member) {
    file_size(path);  // a regular file: libzip would block on a FIFO
    int code = 0;
    archive_ = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (archive_ == nullptr) {
      zip_error_t error;
      zip_error_init_with_code(&error, code);
      const std::string text = zip_error_strerror(&error);
      zip_error_fini(&error);
      throw Error(message("cannot read '", path, "' as a zip archive (.npz): ", text));
    }
    const zip_int64_t index = zip_name_locate(archive_, member.c_str(), 0);
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (index < 0 || zip_stat_index(archive_, static_cast<zip_uint64_t>(index), 0, &stat) != 0 ||
        !(stat.valid & ZIP_STAT_SIZE) || stat.size > static_cast<zip_uint64_t>(INT64_MAX)) {
      zip_discard(archive_);
      throw Error(message("'", path, "' holds no member '", member, "'", index < 0 ? "" : " of a readable size",
                          " (an .npz of images holds data.npy: numpy.savez(FILE, data=ARRAY))"));
    }
    size_ = static_cast<int64_t>(stat.size);
    file_ = zip_fopen_index(archive_, static_cast<zip_uint64_t>(index), 0);
    if (file_ == nullptr) {
      const std::string text = zip_strerror(archive_);
      zip_discard(archive_);
      throw Error(message("cannot read '", name_, "': ", text));
    }
  }
  ~ZipMember() override {
    zip_fclose(file_);
    zip_discard(archive_);
  }
  const std::string& name() const override { return name_; }
  int64_t size() const override { return size_; }
  void read_exact(void* data, int64_t bytes) override {
    SPT_CHECK(bytes <= size_ - done_, "cannot read '", name_, "': it ends after ", size_, " bytes, ", bytes,
              " more were expected at byte ", done_);
    auto* out = static_cast<char*>(data);
    for (int64_t got = 0; got < bytes;) {
      const zip_int64_t n = zip_fread(file_, out + got, static_cast<zip_uint64_t>(bytes - got));
      SPT_CHECK(n > 0, "cannot read '", name_, "': ", n < 0 ? zip_file_strerror(file_) : "it ended early",
                " at byte ", done_ + got, " of ", size_);
      got += n;
    }
    done_ += bytes;
  }
  void check_end() override {
    // Reading past the end makes libzip compare the member's CRC-32.
    char extra = 0;
    const zip_int64_t n = zip_fread(file_, &extra, 1);
    SPT_CHECK(n == 0, "cannot read '", name_, "': ",
              n < 0 ? zip_file_strerror(file_) : "it holds more bytes than its declared size");
    SPT_CHECK(done_ == size_, "'", name_, "' holds ", size_ - done_, " bytes after the ", done_, " expected");
  }

 private:
  std::string name_;
  zip_t* archive_ = nullptr;
  zip_file_t* file_ = nullptr;
  int64_t size_ = 0, done_ = 0;
};

#endif

}  // namespace

std::unique_ptr<ByteSource> open_file_source(const std::string& path) { return std::make_unique<FileSource>(path); }

#ifdef SPT_HAVE_LIBZIP

bool zip_reading_available() { return true; }

std::unique_ptr<ByteSource> open_zip_member(const std::string& path, const std::string& member) {
  return std::make_unique<ZipMember>(path, member);
}

#else

bool zip_reading_available() { return false; }

std::unique_ptr<ByteSource> open_zip_member(const std::string& path, const std::string&) {
  throw Error(message("cannot read '", path, "': spt was built without libzip; install libzip-dev and rebuild, ",
                      "or unpack the .npz (it is a zip of .npy files) and give the data.npy files"));
}

#endif

}  // namespace spt
