#pragma once
/// Mixed precision for the forward pass (LibTorch's autocast).
///
/// While an AutocastGuard is alive, the matrix products and convolutions
/// that this thread runs on one device type are computed in bf16, the
/// parameters staying float32. The clipping engine takes every per-example
/// norm and clipped sum in the parameters' dtype: it promotes a layer's
/// activation A and output gradient G (bf16 under autocast) before its rule
/// runs, so that norms and sums are of the same float32 values and the
/// clipping bound holds as in float32. Noise is added to the float32
/// gradients. Only the forward runs under the guard; the backward follows
/// the forward's dtypes (autograd does so by itself).
///
///   {
///     dp::AutocastGuard autocast(device.type(), dp::MixedPrecision::kBF16);
///     auto recording = engine.record();
///     auto loss = per_example_loss(model->forward(x), y);
///   }
///   engine.clip_and_accumulate(loss.to(torch::kFloat));

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace dptrain::dp {

/// The precision of the forward pass.
enum class MixedPrecision {
  kNone,  ///< everything in the parameters' dtype (the default)
  kBF16,  ///< autocast to bf16 (products, convolutions); float32 elsewhere
};

/// "no" → kNone, "bf16" → kBF16; std::invalid_argument naming `flag` and
/// the value otherwise (fp16 is refused: it needs loss scaling).
MixedPrecision parse_mixed_precision(
    const std::string& value, const std::string& flag = "mixed-precision");
/// "no" or "bf16".
const char* to_string(MixedPrecision precision);

/// Whether this LibTorch can autocast on `device` (CPU and CUDA).
bool autocast_supported(c10::DeviceType device);

/// `x` in `dtype` when x is floating and narrower than that floating dtype
/// (a bf16 activation or loss under autocast), else `x` itself (undefined,
/// integer, or already as wide). What the engine, the loop and the norm
/// layers promote with.
at::Tensor promote_to(const at::Tensor& x, c10::ScalarType dtype);

/// promote_to(x, reference's dtype), or `x` when `reference` is undefined.
/// The normalisation layers compute in their parameters' dtype with it, as
/// CUDA's autocast runs its norms in float32 (CPU's autocast in LibTorch 1.13
/// casts none: a bf16 input would meet float32 weights).
at::Tensor promote_to_dtype_of(const at::Tensor& x,
                               const at::Tensor& reference);

/// Enables autocast to the precision's dtype on `device` for this thread
/// while alive, and restores the previous state (enabled flag and dtype)
/// when destroyed; the outermost guard also clears autocast's cache of cast
/// weights. kNone does nothing. Throws std::invalid_argument for a device
/// autocast_supported refuses.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, MixedPrecision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_ = c10::DeviceType::CPU;
  bool previous_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::BFloat16;
};

}  // namespace dptrain::dp
