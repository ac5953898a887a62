// JPEG/PNG decoding, resizing, and the image folder and CSV layouts, on
// files the tests write with libjpeg and libpng directly.
#include <gtest/gtest.h>
#include <torch/torch.h>

// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on
#include <png.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dptrain/datasets/dataset_info.h"
#include "dptrain/datasets/image_decoder.h"
#include "dptrain/datasets/image_folder.h"
#include "test_util.h"

namespace dptrain::datasets {
namespace {

using testing::error_of;
using testing::TempDir;
namespace fs = std::filesystem;

// Pixels value(y, x, c) of an h × w × c image, channels last.
std::vector<std::uint8_t> pattern(int h, int w, int c, int seed = 0) {
  std::vector<std::uint8_t> p(static_cast<std::size_t>(h * w * c));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        p[(y * w + x) * c + k] = static_cast<std::uint8_t>(
            (seed * 37 + y * 13 + x * 7 + k * 50) % 256);
  return p;
}

// PNG through libpng's simplified writer: format PNG_FORMAT_GRAY, _GA, _RGB
// or _RGBA with the matching pixel count.
void write_png_file(const std::string& path, int h, int w, png_uint_32 format,
                    const std::vector<std::uint8_t>& pixels) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(w);
  image.height = static_cast<png_uint_32>(h);
  image.format = format;
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_NE(png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0,
                                    nullptr),
            0)
      << image.message;
}

std::vector<std::uint8_t> jpeg_bytes(int h, int w, int c,
                                     const std::vector<std::uint8_t>& pixels,
                                     int quality = 100) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = c;
  cinfo.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row =
        const_cast<JSAMPROW>(pixels.data() + cinfo.next_scanline * w * c);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<std::uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()),
             static_cast<std::streamsize>(b.size()));
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(ImageDecoder, PngGreyRgbAndAlphaComeBackExactly) {
  TempDir dir;
  const auto grey = pattern(5, 7, 1);
  const auto rgb = pattern(5, 7, 3);
  const auto rgba = pattern(5, 7, 4);
  write_png_file(dir.file("g.png"), 5, 7, PNG_FORMAT_GRAY, grey);
  write_png_file(dir.file("c.png"), 5, 7, PNG_FORMAT_RGB, rgb);
  write_png_file(dir.file("a.png"), 5, 7, PNG_FORMAT_RGBA, rgba);
  const auto g = decode_image_file(dir.file("g.png"));
  EXPECT_EQ(g.height, 5);
  EXPECT_EQ(g.width, 7);
  EXPECT_EQ(g.channels, 1);
  EXPECT_EQ(g.pixels, grey);
  const auto c = decode_image_file(dir.file("c.png"));
  EXPECT_EQ(c.channels, 3);
  EXPECT_EQ(c.pixels, rgb);
  const auto a = decode_image_file(dir.file("a.png"));
  ASSERT_EQ(a.channels, 3);  // alpha dropped, colours as stored
  for (int i = 0; i < 35; ++i)
    for (int k = 0; k < 3; ++k)
      ASSERT_EQ(a.pixels[i * 3 + k], rgba[i * 4 + k]) << i << "," << k;
}

TEST(ImageDecoder, JpegDecodesCloseToItsSource) {
  // A smooth image at quality 100: JPEG's loss stays within a few levels.
  std::vector<std::uint8_t> rgb(16 * 24 * 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x)
      for (int k = 0; k < 3; ++k)
        rgb[(y * 24 + x) * 3 + k] = 40 + 4 * x + 2 * y + 30 * k;
  const auto bytes = jpeg_bytes(16, 24, 3, rgb);
  const auto image = decode_image(bytes.data(), bytes.size(), "mem.jpg");
  ASSERT_EQ(image.height, 16);
  ASSERT_EQ(image.width, 24);
  ASSERT_EQ(image.channels, 3);
  int worst = 0;
  for (std::size_t i = 0; i < rgb.size(); ++i)
    worst = std::max(worst, std::abs(int(image.pixels[i]) - int(rgb[i])));
  EXPECT_LE(worst, 6);
  const auto gb = jpeg_bytes(8, 8, 1, std::vector<std::uint8_t>(64, 128));
  const auto g = decode_image(gb.data(), gb.size(), "g.jpg");
  EXPECT_EQ(g.channels, 1);
  for (auto v : g.pixels) EXPECT_NEAR(v, 128, 1);
}

TEST(ImageDecoder, CorruptTruncatedAndUnknownFilesNameTheFile) {
  TempDir dir;
  std::vector<std::uint8_t> rgb(32 * 32 * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i)
    rgb[i] = static_cast<std::uint8_t>(i * 7919 % 251);
  auto jpeg = jpeg_bytes(32, 32, 3, rgb, 90);
  jpeg.resize(jpeg.size() / 2);
  write_bytes(dir.file("cut.jpg"), jpeg);
  EXPECT_NE(error_of([&] {
              decode_image_file(dir.file("cut.jpg"));
            }).find(dir.file("cut.jpg") + ": truncated JPEG"),
            std::string::npos);
  auto bad_jpeg = jpeg_bytes(8, 8, 3, pattern(8, 8, 3));
  for (std::size_t i = 3; i < 40 && i < bad_jpeg.size(); ++i)
    bad_jpeg[i] = 0x00;
  write_bytes(dir.file("bad.jpg"), bad_jpeg);
  EXPECT_NE(error_of([&] {
              decode_image_file(dir.file("bad.jpg"));
            }).find(dir.file("bad.jpg") + ": corrupt JPEG: "),
            std::string::npos);
  write_png_file(dir.file("whole.png"), 16, 16, PNG_FORMAT_RGB,
                 pattern(16, 16, 3));
  auto png = read_bytes(dir.file("whole.png"));
  png.resize(png.size() - 20);
  write_bytes(dir.file("cut.png"), png);
  EXPECT_NE(error_of([&] {
              decode_image_file(dir.file("cut.png"));
            }).find(dir.file("cut.png") + ": corrupt PNG: "),
            std::string::npos);
  write_bytes(dir.file("text.png"), {'h', 'e', 'l', 'l', 'o'});
  EXPECT_NE(error_of([&] {
              decode_image_file(dir.file("text.png"));
            }).find("text.png: neither a JPEG nor a PNG"),
            std::string::npos);
  write_bytes(dir.file("empty.jpg"), {});
  EXPECT_NE(error_of([&] {
              decode_image_file(dir.file("empty.jpg"));
            }).find("empty.jpg: empty file"),
            std::string::npos);
}

DecodedImage image_of(int h, int w, int c, std::vector<std::uint8_t> pixels) {
  DecodedImage d;
  d.height = h;
  d.width = w;
  d.channels = c;
  d.pixels = std::move(pixels);
  return d;
}

TEST(ImageResize, HalvingUsesTheWidenedTriangleFilter) {
  // 2 × 4 → scaled by 1/2 to 1 × 2; both rows alike, so the vertical pass
  // (the mean of the two) changes nothing. Horizontally, by hand: scale 2,
  // support 2; output 0 (centre 1.0) weighs inputs 0, 1, 2 by 0.75, 0.75,
  // 0.25, output 1 (centre 3.0) inputs 1, 2, 3 by 0.25, 0.75, 0.75, each
  // divided by 1.75.
  const auto in = image_of(2, 4, 1, {0, 100, 200, 255, 0, 100, 200, 255});
  const auto out = resize_center_crop(in, 1, 2);
  ASSERT_EQ(out.height, 1);
  ASSERT_EQ(out.width, 2);
  EXPECT_EQ(out.pixels[0], 71);   // (75 + 50) / 1.75 = 71.4
  EXPECT_EQ(out.pixels[1], 209);  // (25 + 150 + 191.25) / 1.75 = 209.3
}

TEST(ImageResize, CropsTheCentreAndKeepsConstantsAndSize) {
  // 2 × 4 to 2 × 2: the scale is 1, columns 1 and 2 are kept.
  const auto in = image_of(2, 4, 1, {1, 2, 3, 4, 5, 6, 7, 8});
  const auto out = resize_center_crop(in, 2, 2);
  EXPECT_EQ(out.pixels, (std::vector<std::uint8_t>{2, 3, 6, 7}));
  // A constant image stays constant through any scaling.
  const auto flat =
      image_of(9, 13, 3, std::vector<std::uint8_t>(9 * 13 * 3, 77));
  for (auto [h, w] : {std::pair{4, 4}, std::pair{20, 11}, std::pair{9, 13}}) {
    const auto r = resize_center_crop(flat, h, w);
    ASSERT_EQ(r.height, h);
    ASSERT_EQ(r.width, w);
    ASSERT_EQ(r.channels, 3);
    for (auto v : r.pixels) ASSERT_EQ(v, 77);
  }
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              resize_center_crop(flat, 0, 4);
            }).find("size must be >= 1"),
            std::string::npos);
}

TEST(ImageChannels, GreyFromRgbByBt601AndBack) {
  const auto rgb = image_of(1, 3, 3, {255, 0, 0, 0, 255, 0, 0, 0, 255});
  const auto grey = with_channels(rgb, 1);
  // round(0.299·255), round(0.587·255), round(0.114·255)
  EXPECT_EQ(grey.pixels, (std::vector<std::uint8_t>{76, 150, 29}));
  const auto back = with_channels(grey, 3);
  EXPECT_EQ(back.pixels,
            (std::vector<std::uint8_t>{76, 76, 76, 150, 150, 150, 29, 29, 29}));
}

// ROOT/<class>/ with PNG and JPEG files of classes "cat" and "dog".
void write_class_tree(const std::string& root) {
  write_png_file(root + "/dog/b.png", 6, 6, PNG_FORMAT_RGB,
                 pattern(6, 6, 3, 1));
  write_png_file(root + "/cat/a.png", 6, 6, PNG_FORMAT_GRAY,
                 pattern(6, 6, 1, 2));
  write_bytes(root + "/cat/c.JPG",
              jpeg_bytes(6, 6, 3, std::vector<std::uint8_t>(108, 200)));
  write_bytes(root + "/cat/notes.txt", {'x'});
  fs::create_directories(root + "/empty");
}

TEST(ImageFolder, ClassFoldersInByteOrderBecomeLabels) {
  TempDir dir;
  write_class_tree(dir.path());
  EXPECT_TRUE(is_image_folder(dir.path()));
  EXPECT_EQ(image_folder_splits(dir.path()), std::vector<std::string>{"all"});
  ImageLoadReport report;
  const auto d = load_image_folder(dir.path(), "all", {}, &report);
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d.num_classes(), 2);
  EXPECT_EQ(report.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(d.shape(),
            (std::array<std::int64_t, 3>{3, 6, 6}));  // one is colour
  // cat/a.png, cat/c.JPG, dog/b.png: the grey PNG repeated to RGB.
  const auto labels = d.labels();
  EXPECT_EQ(labels[0].item<std::int64_t>(), 0);
  EXPECT_EQ(labels[1].item<std::int64_t>(), 0);
  EXPECT_EQ(labels[2].item<std::int64_t>(), 1);
  const auto grey = pattern(6, 6, 1, 2);
  const auto rgb = pattern(6, 6, 3, 1);
  auto px = d.images().accessor<std::uint8_t, 4>();
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x)
      for (int k = 0; k < 3; ++k) {
        ASSERT_EQ(px[0][k][y][x], grey[y * 6 + x]);
        ASSERT_NEAR(px[1][k][y][x], 200, 2);
        ASSERT_EQ(px[2][k][y][x], rgb[(y * 6 + x) * 3 + k]);
      }
  EXPECT_EQ(report.decoded, 3);
  EXPECT_TRUE(report.skipped.empty());
  // Grey on request; the same through load_dataset and detect_format.
  ImageFolderOptions grey_options;
  grey_options.channels = 1;
  EXPECT_EQ(load_image_folder(dir.path(), "all", grey_options).shape()[0], 1);
  EXPECT_EQ(detect_format(dir.path()), DatasetFormat::kImageFolder);
  EXPECT_EQ(list_splits(dir.path()), std::vector<std::string>{"all"});
  EXPECT_TRUE(
      torch::equal(load_dataset(dir.path(), "all").images(), d.images()));
}

TEST(ImageFolder, SplitFoldersShareOneClassNumbering) {
  TempDir dir;
  // "bird" only in val: train's labels must still count it.
  write_png_file(dir.file("train/cat/a.png"), 4, 4, PNG_FORMAT_GRAY,
                 pattern(4, 4, 1));
  write_png_file(dir.file("train/dog/a.png"), 4, 4, PNG_FORMAT_GRAY,
                 pattern(4, 4, 1));
  write_png_file(dir.file("val/bird/a.png"), 4, 4, PNG_FORMAT_GRAY,
                 pattern(4, 4, 1));
  write_png_file(dir.file("val/dog/b.png"), 4, 4, PNG_FORMAT_GRAY,
                 pattern(4, 4, 1));
  EXPECT_EQ(image_folder_splits(dir.path()),
            (std::vector<std::string>{"train", "val"}));
  ImageLoadReport report;
  const auto train = load_image_folder(dir.path(), "train", {}, &report);
  EXPECT_EQ(report.class_names,
            (std::vector<std::string>{"bird", "cat", "dog"}));
  EXPECT_EQ(train.num_classes(), 3);
  EXPECT_EQ(train.labels()[0].item<std::int64_t>(), 1);
  EXPECT_EQ(train.labels()[1].item<std::int64_t>(), 2);
  const auto val = load_image_folder(dir.path(), "val");
  EXPECT_EQ(val.labels()[0].item<std::int64_t>(), 0);
  EXPECT_EQ(val.labels()[1].item<std::int64_t>(), 2);
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              load_image_folder(dir.path(), "test");
            }).find("split \"test\" is not in"),
            std::string::npos);
}

TEST(ImageFolder, SizesMustAgreeUnlessAnOutputSizeIsGiven) {
  TempDir dir;
  write_png_file(dir.file("a/1.png"), 4, 4, PNG_FORMAT_RGB, pattern(4, 4, 3));
  write_png_file(dir.file("a/2.png"), 8, 6, PNG_FORMAT_RGB, pattern(8, 6, 3));
  const std::string e = error_of([&] { load_image_folder(dir.path(), "all"); });
  EXPECT_NE(e.find(dir.file("a/2.png") + ": is 6 x 8 pixels but"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("--size H,W"), std::string::npos) << e;
  ImageFolderOptions o;
  o.height = 3;
  o.width = 5;
  const auto d = load_image_folder(dir.path(), "all", o);
  EXPECT_EQ(d.shape(), (std::array<std::int64_t, 3>{3, 3, 5}));
  o.height = 0;
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              load_image_folder(dir.path(), "all", o);
            }).find("image size must be two values >= 1"),
            std::string::npos);
}

TEST(ImageFolder, ACorruptImageStopsTheLoadOrIsSkippedAndListed) {
  TempDir dir;
  write_class_tree(dir.path());
  write_bytes(dir.file("dog/broken.png"),
              {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0});
  const std::string e = error_of([&] { load_image_folder(dir.path(), "all"); });
  EXPECT_EQ(e.rfind(dir.file("dog/broken.png") + ": corrupt PNG", 0), 0u) << e;
  ImageFolderOptions o;
  o.skip_corrupt = true;
  ImageLoadReport report;
  const auto d = load_image_folder(dir.path(), "all", o, &report);
  EXPECT_EQ(d.size(), 3);
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_EQ(report.skipped[0].rfind(dir.file("dog/broken.png"), 0), 0u);
}

TEST(ImageFolder, ThreadCountDoesNotChangeTheResult) {
  TempDir dir;
  for (int i = 0; i < 12; ++i) {
    write_png_file(dir.file("c" + std::to_string(i % 3) + "/" +
                            std::to_string(i) + ".png"),
                   9, 7, PNG_FORMAT_RGB, pattern(9, 7, 3, i));
  }
  ImageFolderOptions one;
  one.threads = 1;
  one.height = one.width = 5;
  ImageFolderOptions three = one;
  three.threads = 3;
  const auto a = load_image_folder(dir.path(), "all", one);
  const auto b = load_image_folder(dir.path(), "all", three);
  EXPECT_TRUE(torch::equal(a.images(), b.images()));
  EXPECT_TRUE(torch::equal(a.labels(), b.labels()));
}

TEST(ImageCsv, PathsLabelsGroupsAndSplits) {
  TempDir dir;
  write_png_file(dir.file("img/p0.png"), 4, 4, PNG_FORMAT_GRAY,
                 pattern(4, 4, 1, 0));
  write_png_file(dir.file("img/p1.png"), 4, 4, PNG_FORMAT_GRAY,
                 pattern(4, 4, 1, 1));
  write_png_file(dir.file("img/p2.png"), 4, 4, PNG_FORMAT_GRAY,
                 pattern(4, 4, 1, 2));
  std::ofstream(dir.file("meta.csv"))
      << "path,label,group,split\n"
      << "img/p0.png,tumour,3,train\n"
      << "\n"
      << "img/p1.png, normal ,0,val\n"
      << dir.file("img/p2.png") << ",normal,-1,train\n";
  EXPECT_EQ(detect_format(dir.file("meta.csv")), DatasetFormat::kImageCsv);
  EXPECT_EQ(list_splits(dir.file("meta.csv")),
            (std::vector<std::string>{"train", "val"}));
  ImageLoadReport report;
  const auto train = load_image_csv(dir.file("meta.csv"), "train", {}, &report);
  EXPECT_EQ(report.class_names, (std::vector<std::string>{"normal", "tumour"}));
  ASSERT_EQ(train.size(), 2);
  EXPECT_TRUE(train.has_groups());
  EXPECT_EQ(train.labels()[0].item<std::int64_t>(), 1);
  EXPECT_EQ(train.labels()[1].item<std::int64_t>(), 0);
  EXPECT_EQ(train.groups()[0].item<std::int64_t>(), 3);
  EXPECT_EQ(train.groups()[1].item<std::int64_t>(), -1);
  EXPECT_EQ(train.images()[1][0][0][1].item<int>(), pattern(4, 4, 1, 2)[1]);
  // Integer labels are kept as they are (class 4 exists, 0-3 are empty).
  std::ofstream(dir.file("numbers.csv")) << "label,path\n4,img/p0.png\n";
  const auto n = load_dataset(dir.file("numbers.csv"), "all");
  EXPECT_EQ(n.num_classes(), 5);
  EXPECT_EQ(n.labels()[0].item<std::int64_t>(), 4);
}

TEST(ImageCsv, BadFilesNameTheFileAndLine) {
  TempDir dir;
  write_png_file(dir.file("p.png"), 4, 4, PNG_FORMAT_GRAY, pattern(4, 4, 1));
  auto error_for = [&](const std::string& text) {
    std::ofstream(dir.file("m.csv")) << text;
    return error_of([&] { load_image_csv(dir.file("m.csv"), "all"); });
  };
  EXPECT_NE(error_for("file,label\np.png,0\n")
                .find("m.csv: line 1: the header has no \"path\" column"),
            std::string::npos);
  EXPECT_NE(error_for("path,label\np.png,0,9\n")
                .find("m.csv: line 2: 3 fields, the header has 2"),
            std::string::npos);
  EXPECT_NE(error_for("path,label,group\np.png,0,x\n")
                .find("m.csv: line 2: group \"x\" is not an integer >= -1"),
            std::string::npos);
  EXPECT_NE(error_for("path,label\n").find("m.csv: lists no images"),
            std::string::npos);
  EXPECT_NE(error_for("path,label\nmissing.png,0\n").find("missing.png: "),
            std::string::npos);
}

}  // namespace
}  // namespace dptrain::datasets
