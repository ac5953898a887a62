// Writers of small data files for the dataset tests: IDX (raw or gzip),
// CIFAR binary and HDF5, all into a temporary folder removed at the end.
#pragma once

#include <hdf5.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dptrain::datasets::testing {

using Bytes = std::vector<std::uint8_t>;

/// A fresh folder under the system temp dir, deleted with its contents.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "dptrain-data-XXXXXX")
            .string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void put_be32(Bytes& b, std::uint32_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 24));
  b.push_back(static_cast<std::uint8_t>(v >> 16));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

/// An IDX buffer: magic 0x0000<type><rank>, big-endian dims, then payload.
inline Bytes idx_bytes(std::uint8_t type,
                       const std::vector<std::uint32_t>& dims,
                       const Bytes& payload) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put_be32(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

/// Pixel value of image n at (h, w): a pattern the tests can recompute.
inline std::uint8_t pixel(std::size_t n, std::size_t c, std::size_t h,
                          std::size_t w) {
  return static_cast<std::uint8_t>((n * 31 + c * 7 + h * 5 + w * 3) % 251);
}

/// uint8 images [n, h, w] with the pixel() pattern, as IDX.
inline Bytes idx_images(std::uint32_t n, std::uint32_t h, std::uint32_t w) {
  Bytes p;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t y = 0; y < h; ++y)
      for (std::size_t x = 0; x < w; ++x) p.push_back(pixel(i, 0, y, x));
  return idx_bytes(0x08, {n, h, w}, p);
}

inline Bytes idx_labels(const Bytes& labels) {
  return idx_bytes(0x08, {static_cast<std::uint32_t>(labels.size())}, labels);
}

inline void write_file(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()),
          static_cast<std::streamsize>(b.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline void write_gzip(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot gzopen " + path);
  if (!b.empty()) gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
  gzclose(f);
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

/// CIFAR records: label byte(s) then 3x32x32 pixels with the pixel() pattern
/// (image index offset by `first`).
inline Bytes cifar_records(const std::vector<std::vector<std::uint8_t>>& labels,
                           std::size_t first = 0) {
  Bytes b;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    b.insert(b.end(), labels[i].begin(), labels[i].end());
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 32; ++y)
        for (std::size_t x = 0; x < 32; ++x)
          b.push_back(pixel(first + i, c, y, x));
  }
  return b;
}

/// A minimal HDF5 writer for tests.
class H5Writer {
 public:
  explicit H5Writer(const std::string& path)
      : file_(
            H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {
    if (file_ < 0) throw std::runtime_error("cannot create " + path);
  }
  ~H5Writer() { H5Fclose(file_); }
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  void group(const std::string& name) {
    H5Gclose(
        H5Gcreate2(file_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  }
  /// Writes `data` (file type `file_type`, memory type `mem_type`).
  template <typename T>
  void dataset(const std::string& name, const std::vector<hsize_t>& dims,
               const std::vector<T>& data, hid_t file_type, hid_t mem_type) {
    hid_t space =
        H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t d = H5Dcreate2(file_, name.c_str(), file_type, space, H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0) throw std::runtime_error("cannot create dataset " + name);
    if (!data.empty())
      H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
    H5Dclose(d);
    H5Sclose(space);
  }
  /// uint8 images [n, h, w, c] with pixel(i, c, y, x) at [i, y, x, c].
  void images(const std::string& name, hsize_t n, hsize_t h, hsize_t w,
              hsize_t c) {
    std::vector<std::uint8_t> v;
    for (hsize_t i = 0; i < n; ++i)
      for (hsize_t y = 0; y < h; ++y)
        for (hsize_t x = 0; x < w; ++x)
          for (hsize_t k = 0; k < c; ++k) v.push_back(pixel(i, k, y, x));
    dataset(name, {n, h, w, c}, v, H5T_STD_U8LE, H5T_NATIVE_UINT8);
  }
  void int_vector(const std::string& name, const std::vector<std::int64_t>& v,
                  hid_t file_type = H5T_STD_I32LE,
                  std::vector<hsize_t> dims = {}) {
    if (dims.empty()) dims = {v.size()};
    dataset(name, dims, v, file_type, H5T_NATIVE_INT64);
  }

 private:
  hid_t file_;
};

}  // namespace dptrain::datasets::testing
