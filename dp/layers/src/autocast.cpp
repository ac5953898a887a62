#include "dptrain/dp/layers/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <stdexcept>

// LibTorch 2.4 made autocast's state per device type; 1.13 to 2.3 have one
// function per device (set_cpu_enabled, set_enabled for CUDA), which 2.4+
// keeps only as deprecated.
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DPTRAIN_AUTOCAST_PER_DEVICE 1
#else
#define DPTRAIN_AUTOCAST_PER_DEVICE 0
#endif

namespace dptrain::dp {
namespace {

bool is_enabled(c10::DeviceType device) {
#if DPTRAIN_AUTOCAST_PER_DEVICE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled()
                                        : at::autocast::is_enabled();
#endif
}

void set_enabled(c10::DeviceType device, bool enabled) {
#if DPTRAIN_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(enabled);
  } else {
    at::autocast::set_enabled(enabled);
  }
#endif
}

c10::ScalarType get_dtype(c10::DeviceType device) {
#if DPTRAIN_AUTOCAST_PER_DEVICE
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CPU
             ? at::autocast::get_autocast_cpu_dtype()
             : at::autocast::get_autocast_gpu_dtype();
#endif
}

void set_dtype(c10::DeviceType device, c10::ScalarType dtype) {
#if DPTRAIN_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

}  // namespace

MixedPrecision parse_mixed_precision(const std::string& value,
                                     const std::string& flag) {
  if (value == "no") return MixedPrecision::kNone;
  if (value == "bf16") return MixedPrecision::kBF16;
  std::string message =
      "--" + flag + " must be no or bf16, got '" + value + "'";
  if (value == "fp16") {
    message +=
        " (fp16 needs loss scaling, which per-example clipping would "
        "have to undo example by example; use bf16)";
  }
  throw std::invalid_argument(message);
}

at::Tensor promote_to(const at::Tensor& x, c10::ScalarType dtype) {
  if (x.defined() && x.is_floating_point() && c10::isFloatingType(dtype) &&
      x.element_size() < static_cast<int64_t>(c10::elementSize(dtype))) {
    return x.to(dtype);
  }
  return x;
}

at::Tensor promote_to_dtype_of(const at::Tensor& x,
                               const at::Tensor& reference) {
  return reference.defined() ? promote_to(x, reference.scalar_type()) : x;
}

const char* to_string(MixedPrecision precision) {
  return precision == MixedPrecision::kBF16 ? "bf16" : "no";
}

bool autocast_supported(c10::DeviceType device) {
  return device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA;
}

AutocastGuard::AutocastGuard(c10::DeviceType device, MixedPrecision precision)
    : device_(device) {
  if (precision == MixedPrecision::kNone) return;
  if (!autocast_supported(device)) {
    throw std::invalid_argument(
        std::string("mixed precision (autocast) runs on cpu or cuda, not ") +
        c10::DeviceTypeName(device, /*lower_case=*/true));
  }
  previous_enabled_ = is_enabled(device);
  previous_dtype_ = get_dtype(device);
  set_dtype(device, c10::ScalarType::BFloat16);
  set_enabled(device, true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // The outermost region drops the bf16 copies of the weights it cached.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_, previous_enabled_);
  set_dtype(device_, previous_dtype_);
}

}  // namespace dptrain::dp
