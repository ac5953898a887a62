#include "dptrain/dp/clipping/parameter_groups.h"

#include <torch/torch.h>

#include <numeric>
#include <unordered_map>

namespace dptrain::dp {

namespace detail {

int64_t parameter_groups(const torch::nn::Module& model,
                         std::vector<torch::Tensor>& params,
                         std::vector<std::string>& names,
                         std::vector<int64_t>& groups) {
  params.clear();
  names.clear();
  groups.clear();
  std::unordered_map<const c10::TensorImpl*, size_t> index;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!item.value().defined()) continue;
    if (index.emplace(item.value().unsafeGetTensorImpl(), params.size())
            .second) {
      params.push_back(item.value());
      names.push_back(item.key());
    }
  }
  // Union-find: the trainable parameters of one module form one group.
  std::vector<size_t> parent(params.size());
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](size_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (const auto& m : model.modules(/*include_self=*/true)) {
    int64_t first = -1;
    for (const auto& p : m->parameters(/*recurse=*/false)) {
      if (!p.defined() || !p.requires_grad()) continue;
      const size_t i = index.at(p.unsafeGetTensorImpl());
      if (first < 0) {
        first = static_cast<int64_t>(i);
      } else {
        parent[find(i)] = find(static_cast<size_t>(first));
      }
    }
  }
  std::unordered_map<size_t, int64_t> group_of_root;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].requires_grad()) {
      groups.push_back(-1);
      continue;
    }
    auto it = group_of_root.emplace(find(i), group_of_root.size()).first;
    groups.push_back(it->second);
  }
  return static_cast<int64_t>(group_of_root.size());
}

}  // namespace detail

}  // namespace dptrain::dp
