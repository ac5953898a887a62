#include "dptrain/dp/mechanism/noise_generator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp {
namespace {

void check_numel(int64_t numel) {
  if (numel < 0) {
    throw std::invalid_argument("numel must be >= 0, got " +
                                std::to_string(numel));
  }
}

void check_dtype(at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kDouble) {
    throw std::invalid_argument(
        std::string("noise dtype must be float or double, got ") +
        c10::toString(dtype));
  }
}

void check_block(int64_t block) {
  if (block < 1) {
    throw std::invalid_argument("noise block must be >= 1, got " +
                                std::to_string(block));
  }
}

}  // namespace

void NoiseGenerator::standard_normal_blocks(int64_t numel, int64_t block,
                                            const BlockConsumer& consume) {
  check_numel(numel);
  check_block(block);
  const at::Tensor z = standard_normal(numel, at::kDouble);
  if (z.scalar_type() != at::kDouble || z.numel() != numel ||
      !z.is_contiguous() || !z.device().is_cpu()) {
    throw std::logic_error(
        "NoiseGenerator::standard_normal returned the wrong dtype, size or "
        "layout");
  }
  if (numel > 0) consume(0, z.data_ptr<double>(), numel);
}

SeededNoise::SeededNoise(uint64_t seed)
    : generator_(at::detail::createCPUGenerator(seed)) {}

at::Tensor SeededNoise::standard_normal(int64_t numel, at::ScalarType dtype) {
  check_numel(numel);
  check_dtype(dtype);
  return at::empty({numel}, at::TensorOptions().dtype(dtype))
      .normal_(0.0, 1.0, generator_);
}

void SeededNoise::save(torch::serialize::OutputArchive& archive) const {
  detail::write_string(archive, "kind", name());
  at::Tensor state;
  {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    state = generator_.get_state();
  }
  archive.write("state", state);
}

void SeededNoise::load(torch::serialize::InputArchive& archive) {
  detail::expect_same("noise generator", "kind",
                      detail::read_string(archive, "kind"), name());
  const at::Tensor state = detail::read_tensor(archive, "state");
  // Validate on a scratch generator so a bad state changes nothing here.
  at::Generator scratch = at::detail::createCPUGenerator(0);
  try {
    scratch.set_state(state);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "noise generator checkpoint has an invalid 'state': " +
        std::string(e.what_without_backtrace()));
  }
  std::lock_guard<std::mutex> lock(generator_.mutex());
  generator_.set_state(state);
}

SecureNoise::SecureNoise() : key_(os_entropy_key()) {}

at::Tensor SecureNoise::standard_normal(int64_t numel, at::ScalarType dtype) {
  check_numel(numel);
  check_dtype(dtype);
  at::Tensor out = at::empty({numel}, at::TensorOptions().dtype(dtype));
  if (dtype == at::kFloat) {
    secure_standard_normal(key_, calls_++, out.data_ptr<float>(), numel);
  } else {
    secure_standard_normal(key_, calls_++, out.data_ptr<double>(), numel);
  }
  return out;
}

void SecureNoise::standard_normal_blocks(int64_t numel, int64_t block,
                                         const BlockConsumer& consume) {
  check_numel(numel);
  check_block(block);
  const uint64_t stream = calls_++;
  block = std::min(numel, (block + kSecureNormalChunk - 1) /
                              kSecureNormalChunk * kSecureNormalChunk);
  buffer_.resize(static_cast<size_t>(std::max<int64_t>(block, 0)));
  for (int64_t first = 0; first < numel; first += block) {
    const int64_t count = std::min(block, numel - first);
    secure_standard_normal_range(key_, stream, buffer_.data(), first, count);
    consume(first, buffer_.data(), count);
  }
}

void SecureNoise::save(torch::serialize::OutputArchive& archive) const {
  detail::write_string(archive, "kind", name());
}

void SecureNoise::load(torch::serialize::InputArchive& archive) {
  detail::expect_same("noise generator", "kind",
                      detail::read_string(archive, "kind"), name());
  key_ = os_entropy_key();
  calls_ = 0;
}

}  // namespace dptrain::dp
