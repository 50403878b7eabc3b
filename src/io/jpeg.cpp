#include "io/jpeg.h"

#include <memory>

#include "core/error.h"

#ifdef SPT_HAVE_JPEG
#include <csetjmp>
#include <cstdio>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#endif

namespace spt {

#ifdef SPT_HAVE_JPEG

namespace {

// libjpeg's default error handler exits the process; this one jumps back instead and
// keeps the first message, warnings included.
struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char text[JMSG_LENGTH_MAX];
  bool failed;
};

void on_error(j_common_ptr info) {
  auto* e = reinterpret_cast<ErrorManager*>(info->err);
  if (!e->failed) info->err->format_message(info, e->text);
  e->failed = true;
  std::longjmp(e->jump, 1);
}

void on_message(j_common_ptr info, int level) {
  auto* e = reinterpret_cast<ErrorManager*>(info->err);
  if (level >= 0 || e->failed) return;  // traces; or a warning after the first
  info->err->format_message(info, e->text);
  e->failed = true;
}

ErrorManager* install(jpeg_common_struct* info, ErrorManager& e) {
  info->err = jpeg_std_error(&e.pub);
  e.pub.error_exit = on_error;
  e.pub.emit_message = on_message;
  e.failed = false;
  e.text[0] = '\0';
  return &e;
}

// The setjmp frames hold only trivially destructible locals, so a longjmp skips no destructor.
bool read_header(jpeg_decompress_struct* d, ErrorManager* e, const uint8_t* bytes, int64_t size) {
  if (setjmp(e->jump)) return false;
  jpeg_mem_src(d, bytes, static_cast<unsigned long>(size));
  jpeg_read_header(d, TRUE);
  return !e->failed;
}

bool read_pixels(jpeg_decompress_struct* d, ErrorManager* e, uint8_t* out, size_t row_bytes) {
  if (setjmp(e->jump)) return false;
  jpeg_start_decompress(d);
  while (d->output_scanline < d->output_height) {
    JSAMPROW row = out + d->output_scanline * row_bytes;
    jpeg_read_scanlines(d, &row, 1);
  }
  jpeg_finish_decompress(d);
  return !e->failed;
}

bool write_pixels(jpeg_compress_struct* c, ErrorManager* e, std::FILE* file, const Image* image, int quality) {
  if (setjmp(e->jump)) return false;
  jpeg_stdio_dest(c, file);
  c->image_width = static_cast<JDIMENSION>(image->width);
  c->image_height = static_cast<JDIMENSION>(image->height);
  c->input_components = image->channels;
  c->in_color_space = image->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(c);
  jpeg_set_quality(c, quality, TRUE);
  jpeg_start_compress(c, TRUE);
  const size_t row_bytes = static_cast<size_t>(image->width) * image->channels;
  while (c->next_scanline < c->image_height) {
    auto* row = const_cast<JSAMPROW>(image->pixels.data() + c->next_scanline * row_bytes);
    jpeg_write_scanlines(c, &row, 1);
  }
  jpeg_finish_compress(c);
  return !e->failed;
}

}  // namespace

bool jpeg_available() { return true; }

Image decode_jpeg(const uint8_t* bytes, int64_t size, const std::string& name, int64_t max_tokens) {
  jpeg_decompress_struct d{};
  ErrorManager e{};
  install(reinterpret_cast<jpeg_common_struct*>(&d), e);
  jpeg_create_decompress(&d);
  std::unique_ptr<jpeg_decompress_struct, void (*)(jpeg_decompress_struct*)> guard(&d, jpeg_destroy_decompress);
  SPT_CHECK(read_header(&d, &e, bytes, size), "cannot decode '", name, "' as JPEG: ", e.text);
  SPT_CHECK(d.jpeg_color_space != JCS_CMYK && d.jpeg_color_space != JCS_YCCK, "'", name,
            "' is a CMYK JPEG; spt prepares grey or RGB images only");
  const bool grey = d.jpeg_color_space == JCS_GRAYSCALE;
  d.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
  const int channels = grey ? 1 : 3;
  const int64_t width = d.image_width, height = d.image_height;
  SPT_CHECK(width >= 1 && height >= 1 && width * height <= max_tokens / channels, "'", name, "' is a ", width, "x",
            height, "x", channels, " image, more than the ", max_tokens, " tokens spt prepares");
  Image image{static_cast<int>(width), static_cast<int>(height), channels,
              std::vector<uint8_t>(static_cast<size_t>(width * height * channels))};
  SPT_CHECK(read_pixels(&d, &e, image.pixels.data(), static_cast<size_t>(width * channels)), "cannot decode '", name,
            "' as JPEG: ", e.text);
  return image;
}

void write_jpeg(const std::string& path, const Image& image, int quality) {
  SPT_CHECK(image.channels == 1 || image.channels == 3, "cannot write JPEG '", path, "': ", image.channels,
            " channels, expected 1 or 3");
  SPT_CHECK(quality >= 1 && quality <= 100, "JPEG quality ", quality, " is outside 1..100");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  SPT_CHECK(file != nullptr, "cannot write JPEG '", path, "'");
  jpeg_compress_struct c{};
  ErrorManager e{};
  install(reinterpret_cast<jpeg_common_struct*>(&c), e);
  jpeg_create_compress(&c);
  const bool ok = write_pixels(&c, &e, file.get(), &image, quality);
  jpeg_destroy_compress(&c);
  SPT_CHECK(ok, "cannot write JPEG '", path, "': ", e.text);
}

#else

bool jpeg_available() { return false; }

Image decode_jpeg(const uint8_t*, int64_t, const std::string& name, int64_t) {
  throw Error(message("cannot decode '", name, "': spt was built without libjpeg; install libjpeg62-turbo-dev and ",
                      "rebuild, or convert the JPEGs to PNG"));
}

void write_jpeg(const std::string& path, const Image&, int) {
  throw Error(message("cannot write JPEG '", path, "': spt was built without libjpeg"));
}

#endif

}  // namespace spt
