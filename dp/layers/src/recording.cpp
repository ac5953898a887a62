#include "dptrain/dp/layers/recording.h"

#include <torch/torch.h>

namespace dptrain::dp::detail {

void record_call(const torch::nn::Module& layer, const torch::Tensor& input,
                 const torch::Tensor& output, std::vector<int64_t> ints) {
  if (!output.requires_grad()) return;  // no graph (NoGradGuard, all frozen)
  bool trainable = false;
  for (const auto& p : layer.parameters(/*recurse=*/false)) {
    if (p.requires_grad()) {
      trainable = true;
      break;
    }
  }
  if (!trainable) return;  // frozen layers cost nothing
  LayerCall call;
  call.layer = &layer;
  if (input.defined()) call.input = input.detach();
  call.output = output;
  call.ints = std::move(ints);
  call.output_edge = torch::autograd::impl::gradient_edge(output);
  call.output_version_counter = output.unsafeGetTensorImpl()->version_counter();
  call.output_version = output._version();
  call.output_dtype = output.scalar_type();
  if (tls_recorder->keep_output && !tls_recorder->keep_output(call)) {
    call.output = torch::Tensor();
  }
  tls_recorder->calls.push_back(std::move(call));
}

}  // namespace dptrain::dp::detail
