// `spt prepare` for images: NumPy arrays (data/image_arrays.h), folders or tar archives
// of PNG / JPEG files, IDX and CIFAR-10 directories, into a prepared set of modality
// "image" (data/prepared_index.h). Splits follow data/image_splits.h; docs/DATA.md has
// the whole story.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "data/file_read.h"
#include "data/formats.h"
#include "data/image_arrays.h"
#include "data/image_splits.h"
#include "data/prepare.h"
#include "data/prepare_progress.h"
#include "data/prepared_writer.h"
#include "io/image_decode.h"
#include "io/input_file.h"
#include "io/mapped_file.h"
#include "io/tar_index.h"

namespace spt {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kRunBytes = int64_t{4} << 20;
constexpr int64_t kMaxImageFileBytes = int64_t{256} << 20;

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool is_picture_name(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

bool holds_idx(const fs::path& dir) {
  return file_exists((dir / "train-images-idx3-ubyte").string()) ||
         file_exists((dir / "train-images-idx3-ubyte.gz").string());
}

bool holds_cifar10(const fs::path& dir) {
  return file_exists((dir / "data_batch_1.bin").string()) ||
         file_exists((dir / "cifar-10-batches-bin" / "data_batch_1.bin").string());
}

// Images into the writer in split order, a run at a time, counted for the progress line.
class ImageSink {
 public:
  ImageSink(const PrepareOptions& o, int64_t total)
      : writer_(o.out, o.force), progress_(o.progress, static_cast<size_t>(total), "images") {}

  void add(int rank, const ImageShape& shape, const uint8_t* pixels, int64_t count) {
    if (rank != pending_rank_ || !(shape == pending_shape_) || pending_.size() >= kRunBytes) flush();
    pending_rank_ = rank;
    pending_shape_ = shape;
    pending_.insert(pending_.end(), pixels, pixels + count * shape.tokens());
    pending_count_ += count;
    advance(count);
  }
  void skip() { ++skipped_, advance(1); }

  PrepareResult finish() {
    flush();
    for (int rank = 0; rank < 3; ++rank)
      SPT_CHECK(writer_.images_in(split_name(rank)) > 0, "the ", split_name(rank), " split is empty (", skipped_,
                " images skipped in all); add images or fix the bad ones");
    PrepareResult result;
    result.skipped = skipped_;
    result.index = writer_.finish("image", 0);
    return result;
  }

 private:
  void advance(int64_t count) {
    done_ += count;
    progress_.update(static_cast<size_t>(done_));
  }
  void flush() {
    if (pending_count_ > 0) writer_.add_images(split_name(pending_rank_), pending_shape_, pending_.data(), pending_count_);
    pending_.clear();
    pending_count_ = 0;
  }

  PreparedWriter writer_;
  PrepareProgress progress_;
  std::vector<uint8_t> pending_;
  int pending_rank_ = 0;
  ImageShape pending_shape_;
  int64_t pending_count_ = 0, done_ = 0, skipped_ = 0;
};

// ---- NumPy arrays ----

PrepareResult prepare_arrays(const PrepareOptions& o, const std::vector<std::string>& paths) {
  std::vector<ImageArrayFile> files;
  std::vector<ImageTag> tags;
  for (const std::string& path : paths) {
    files.push_back(probe_image_array(path));
    const ImageShape& s = files.back().shape, &first = files.front().shape;
    SPT_CHECK(s == first, "'", path, "' holds ", s.height, "x", s.width, "x", s.channels, " images but '", paths[0],
              "' holds ", first.height, "x", first.width, "x", first.channels, "; every file must hold one size");
    tags.insert(tags.end(), static_cast<size_t>(files.back().images), image_tag(fs::path(path).filename().string()));
  }
  const auto name_of = [&](int64_t k) {
    for (const ImageArrayFile& f : files) {
      if (k < f.images) return message(f.path, " image ", k);
      k -= f.images;
    }
    return std::string("?");
  };
  const std::vector<uint8_t> ranks = plan_image_splits(tags, o.seed, name_of);
  ImageSink sink(o, static_cast<int64_t>(ranks.size()));
  for (int rank = 0; rank < 3; ++rank) {
    int64_t base = 0;
    for (const ImageArrayFile& file : files) {
      const auto begin = ranks.begin() + base, end = begin + file.images;
      if (std::find(begin, end, rank) != end) {
        read_image_array(file, [&](int64_t first, int64_t count, const uint8_t* pixels) {
          for (int64_t i = 0; i < count; ++i)
            if (ranks[static_cast<size_t>(base + first + i)] == rank)
              sink.add(rank, file.shape, pixels + i * file.shape.tokens(), 1);
        });
      }
      base += file.images;
    }
  }
  return sink.finish();
}

// ---- PNG / JPEG files, in a folder or a tar archive ----

struct PictureItem {
  std::string name;     // relative to the folder, or the path inside the archive
  int64_t offset = -1;  // in the archive; -1: a file of the folder
  int64_t size = 0;
};

// Tags from the first folder of each name, or the second when every name shares the
// first (an archive of train_64x64/ only, or of imagenet/{train,val}/).
std::vector<ImageTag> picture_tags(const std::vector<PictureItem>& items) {
  const auto component = [](const std::string& name, int k) {
    const fs::path path(name);
    auto it = path.begin();
    for (int i = 0; i < k && it != path.end(); ++i) ++it;
    return it == path.end() || std::next(it) == path.end() ? std::string() : it->string();
  };
  int depth = 0;
  const std::string top = component(items.front().name, 0);
  const auto under_top = [&](const PictureItem& p) { return component(p.name, 0) == top; };
  if (!top.empty() && std::all_of(items.begin(), items.end(), under_top)) depth = 1;
  std::vector<ImageTag> tags;
  for (const PictureItem& item : items) tags.push_back(image_tag(component(item.name, depth)));
  return tags;
}

Image decode_item(const PictureItem& item, const std::string& source, const MappedFile* archive) {
  if (archive != nullptr)
    return decode_image(archive->data() + item.offset, item.size, source + ":" + item.name, kMaxImageTokens);
  const std::string path = (fs::path(source) / item.name).string();
  SPT_CHECK(file_size(path) <= kMaxImageFileBytes, "'", path, "' is larger than the ", kMaxImageFileBytes,
            " bytes an image file may be");
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), static_cast<int64_t>(bytes.size()), path, kMaxImageTokens);
}

PrepareResult prepare_pictures(const PrepareOptions& o, std::vector<PictureItem> items, const MappedFile* archive) {
  SPT_CHECK(!items.empty(), "no .png, .jpg or .jpeg images in '", o.source, "'");
  std::sort(items.begin(), items.end(),
            [](const PictureItem& a, const PictureItem& b) { return natural_less(a.name, b.name); });
  const std::vector<uint8_t> ranks =
      plan_image_splits(picture_tags(items), o.seed, [&](int64_t k) { return items[static_cast<size_t>(k)].name; });
  ImageSink sink(o, static_cast<int64_t>(items.size()));
  ImageShape shape;
  std::string first;
  for (int rank = 0; rank < 3; ++rank) {
    for (size_t k = 0; k < items.size(); ++k) {
      if (ranks[k] != rank) continue;
      Image image;
      try {
        image = decode_item(items[k], o.source, archive);
      } catch (const Error& e) {
        if (!o.skip_bad) throw;
        std::fprintf(stderr, "spt prepare: skipping %s\n", e.what());
        sink.skip();
        continue;
      }
      const ImageShape got{image.height, image.width, image.channels};
      if (first.empty()) shape = got, first = items[k].name;
      SPT_CHECK(got == shape, "'", items[k].name, "' is ", got.height, "x", got.width, "x", got.channels, " but '", first,
                "' is ", shape.height, "x", shape.width, "x", shape.channels,
                " (height x width x channels); every image of a set must have one size and channel count");
      sink.add(rank, shape, image.pixels.data(), 1);
    }
  }
  return sink.finish();
}

std::vector<PictureItem> folder_pictures(const std::string& dir) {
  std::vector<PictureItem> items;
  for (const auto& entry : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
    if (entry.is_regular_file() && is_picture_name(entry.path().string()))
      items.push_back({entry.path().lexically_relative(dir).string()});
  return items;
}

PrepareResult prepare_tar(const PrepareOptions& o) {
  const MappedFile archive(o.source);
  std::vector<PictureItem> items;
  for (const TarMember& m : list_tar(archive.data(), archive.size(), o.source))
    if (is_picture_name(m.name)) items.push_back({fs::path(m.name).lexically_normal().string(), m.offset, m.size});
  return prepare_pictures(o, std::move(items), &archive);
}

// ---- IDX and CIFAR-10: what their loaders read, written as a prepared set ----

PrepareResult prepare_loaded(const PrepareOptions& o, const Dataset& data) {
  ImageSink sink(o, data.train.records() + data.valid.records() + data.test.records());
  const ImageShape shape{data.rows, data.cols, data.channels};
  for (int rank = 0; rank < 3; ++rank) {
    const TokenSplit& split = data.split(split_name(rank));
    sink.add(rank, shape, split.data(), split.records());
  }
  return sink.finish();
}

std::vector<std::string> array_files(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& entry : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
    if (entry.is_regular_file() && is_image_array_name(entry.path().string())) paths.push_back(entry.path().string());
  std::sort(paths.begin(), paths.end(), natural_less);
  return paths;
}

}  // namespace

bool is_image_source(const std::string& source) {
  std::error_code ec;
  if (!fs::is_directory(source, ec)) {
    const std::string ext = lower_extension(source);
    return is_image_array_name(source) || is_picture_name(source) || ext == ".tar";
  }
  if (holds_idx(source) || holds_cifar10(source)) return true;
  for (const auto& entry : fs::recursive_directory_iterator(source, fs::directory_options::follow_directory_symlink))
    if (entry.is_regular_file() && (is_picture_name(entry.path().string()) || is_image_array_name(entry.path().string())))
      return true;
  return false;
}

PrepareResult prepare_images(const PrepareOptions& o) {
  SPT_CHECK(o.list_file.empty(), "--list names recordings; give images as a folder, a .tar, or .npz / .npy files");
  std::error_code ec;
  SPT_CHECK(fs::exists(o.source, ec), "'", o.source, "' does not exist");
  if (!fs::is_directory(o.source, ec)) {
    if (is_image_array_name(o.source)) return prepare_arrays(o, {o.source});
    SPT_CHECK(lower_extension(o.source) == ".tar", "'", o.source, "' is not a folder, a .tar, an .npz or an .npy; ",
              "give the folder that holds the images");
    return prepare_tar(o);
  }
  if (holds_idx(o.source)) return prepare_loaded(o, load_idx(o.source));
  if (holds_cifar10(o.source)) return prepare_loaded(o, load_cifar10(o.source));
  const std::vector<std::string> arrays = array_files(o.source);
  std::vector<PictureItem> pictures = folder_pictures(o.source);
  SPT_CHECK(arrays.empty() || pictures.empty(), "'", o.source, "' holds both image arrays ('", arrays.empty() ? "" : arrays[0],
            "') and image files ('", pictures.empty() ? "" : pictures[0].name, "'); give a folder of one kind");
  if (!arrays.empty()) return prepare_arrays(o, arrays);
  return prepare_pictures(o, std::move(pictures), nullptr);
}

}  // namespace spt
