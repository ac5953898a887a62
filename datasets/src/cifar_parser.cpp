#include "dptrain/datasets/cifar_parser.h"

#include "dptrain/datasets/errors.h"

namespace dptrain::datasets {

std::int64_t cifar_num_classes(CifarVariant variant, CifarLabel label) {
  if (variant == CifarVariant::kCifar10) return 10;
  return label == CifarLabel::kFine ? 100 : 20;
}

CifarRecords parse_cifar(const std::uint8_t* data, std::size_t size,
                         const std::string& name, CifarVariant variant,
                         CifarLabel label) {
  CifarRecords out;
  out.label_bytes = variant == CifarVariant::kCifar10 ? 1 : 2;
  out.record_bytes = out.label_bytes + kCifarImageBytes;
  const char* format =
      variant == CifarVariant::kCifar10 ? "CIFAR-10" : "CIFAR-100";
  if (size == 0 || data == nullptr) {
    throw DatasetError(name, std::string("empty ") + format + " file");
  }
  if (size % out.record_bytes != 0) {
    throw DatasetError(
        name,
        "truncated data: " + std::to_string(size) +
            " bytes is not a whole number of " + format + " records of " +
            std::to_string(out.record_bytes) + " bytes (" +
            std::to_string(size / out.record_bytes) + " whole records and " +
            std::to_string(size % out.record_bytes) + " bytes left over)");
  }
  const std::size_t n = size / out.record_bytes;
  // CIFAR-100 stores <coarse><fine>; pick the requested byte.
  const std::size_t label_offset =
      (variant == CifarVariant::kCifar100 && label == CifarLabel::kFine) ? 1
                                                                         : 0;
  const std::int64_t classes = cifar_num_classes(variant, label);
  out.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t y = data[i * out.record_bytes + label_offset];
    if (y >= classes) {
      throw DatasetError(name, "label out of range: record " +
                                   std::to_string(i) + " has label " +
                                   std::to_string(y) + ", expected 0.." +
                                   std::to_string(classes - 1));
    }
    out.labels[i] = y;
  }
  out.data = data;
  return out;
}

}  // namespace dptrain::datasets
