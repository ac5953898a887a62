// libFuzzer target: parse_cifar (both variants, both label choices) on
// arbitrary bytes must either throw DatasetError or return in-range labels
// and image views inside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dptrain/datasets/cifar_parser.h"
#include "dptrain/datasets/errors.h"

namespace {

void check(const std::uint8_t* data, std::size_t size,
           dptrain::datasets::CifarVariant variant,
           dptrain::datasets::CifarLabel label) {
  using namespace dptrain::datasets;
  try {
    const CifarRecords r = parse_cifar(data, size, "fuzz.bin", variant, label);
    const std::int64_t classes = cifar_num_classes(variant, label);
    std::uint8_t image[kCifarImageBytes];
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (r.labels[i] < 0 || r.labels[i] >= classes) std::abort();
      if (r.image(i) < data || r.image(i) + kCifarImageBytes > data + size) {
        std::abort();
      }
      std::memcpy(image, r.image(i), kCifarImageBytes);  // ASan checks reads
    }
  } catch (const DatasetError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  using dptrain::datasets::CifarLabel;
  using dptrain::datasets::CifarVariant;
  check(data, size, CifarVariant::kCifar10, CifarLabel::kFine);
  check(data, size, CifarVariant::kCifar100, CifarLabel::kFine);
  check(data, size, CifarVariant::kCifar100, CifarLabel::kCoarse);
  return 0;
}
