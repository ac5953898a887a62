#include "dptrain/dp/mechanism/noise_generator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// Coordinates per parallel chunk, and the stream words each pair of
// coordinates consumes: four Box–Muller pairs of two 64-bit uniforms.
constexpr int64_t kChunk = 4096;
constexpr uint64_t kWordsPerPair = 8;

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

// Two independent N(0, 1) draws, each the scaled sum of four independent
// Box–Muller draws: pair k gives r_k cos θ_k to the first output and
// r_k sin θ_k to the second, and (r cos θ, r sin θ) are independent normals.
inline void secure_pair(ChaChaStream& stream, double& first, double& second) {
  double a = 0;
  double b = 0;
  for (int k = 0; k < 4; ++k) {
    const double u1 = stream.next_uniform_open_closed();  // log(u1) finite
    const double u2 = stream.next_uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = kTwoPi * u2;
    a += r * std::cos(theta);
    b += r * std::sin(theta);
  }
  first = 0.5 * a;
  second = 0.5 * b;
}

// Chunk c of the draws (kChunk of them, fewer in the last) always reads the
// same stretch of the stream, so the result does not depend on the threads.
template <typename T>
void secure_fill(const ChaChaKey& key, uint64_t stream_id, T* out,
                 int64_t numel) {
  check_numel(numel);
  const int64_t chunks = (numel + kChunk - 1) / kChunk;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    ChaChaStream stream(key, stream_id);
    double buffer[kChunk];
    for (int64_t c = begin; c < end; ++c) {
      stream.seek(static_cast<uint64_t>(c) * (kChunk / 2) * kWordsPerPair);
      const int64_t first = c * kChunk;
      const int64_t count = std::min(numel, first + kChunk) - first;
      int64_t i = 0;
      for (; i + 1 < count; i += 2)
        secure_pair(stream, buffer[i], buffer[i + 1]);
      if (i < count) {
        double unused = 0;
        secure_pair(stream, buffer[i], unused);
      }
      for (int64_t j = 0; j < count; ++j) {
        out[first + j] = static_cast<T>(buffer[j]);
      }
    }
  });
}

}  // namespace

void secure_standard_normal(const ChaChaKey& key, uint64_t stream_id,
                            double* out, int64_t numel) {
  secure_fill(key, stream_id, out, numel);
}

void secure_standard_normal(const ChaChaKey& key, uint64_t stream_id,
                            float* out, int64_t numel) {
  secure_fill(key, stream_id, out, numel);
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
