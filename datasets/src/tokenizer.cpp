#include "dptrain/datasets/tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "dptrain/datasets/errors.h"

namespace dptrain::datasets {
namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "bytes"; }
  std::int64_t vocab_size() const override { return 256; }
  std::vector<std::int32_t> encode(const std::string& text) const override {
    std::vector<std::int32_t> ids;
    ids.reserve(text.size());
    for (const unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string out;
    out.reserve(ids.size());
    for (const auto id : ids) {
      if (id < 0 || id > 255) {
        throw std::invalid_argument("byte tokenizer: id " + std::to_string(id) +
                                    " is not a byte (0..255)");
      }
      out.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    }
    return out;
  }
};

// libsentencepiece through datasets/shim/sentencepiece_shim.cpp, loaded
// with dlmopen in a link-map namespace of its own: Debian's libsentencepiece
// exports its own protobuf-lite, which linked into a process with LibTorch's
// libprotobuf crashes it at start-up (see the shim for what else fails).
struct SpmApi {
  void* (*load)(const char*, std::size_t, int, char*, std::size_t) = nullptr;
  void (*free_handle)(void*) = nullptr;
  void (*free_buffer)(void*) = nullptr;
  int (*id)(void*, int) = nullptr;
  int (*encode)(void*, const char*, std::size_t, int**, std::size_t*, char*,
                std::size_t) = nullptr;
  int (*decode)(void*, const int*, std::size_t, char**, std::size_t*, char*,
                std::size_t) = nullptr;
  int (*train)(const char*, char*, std::size_t) = nullptr;
  std::string error;  // why it could not be loaded; empty when loaded
};

// Where the shim is: $DPTRAIN_SENTENCEPIECE_SHIM, the installed library,
// then the build tree's.
const SpmApi& spm_api() {
  static const SpmApi api = [] {
    SpmApi a;
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("DPTRAIN_SENTENCEPIECE_SHIM")) {
      candidates.emplace_back(env);
    }
#ifdef DPTRAIN_SPM_SHIM_INSTALL
    candidates.emplace_back(DPTRAIN_SPM_SHIM_INSTALL);
#endif
#ifdef DPTRAIN_SPM_SHIM_BUILD
    candidates.emplace_back(DPTRAIN_SPM_SHIM_BUILD);
#endif
    void* lib = nullptr;
    std::string tried;
    for (const auto& path : candidates) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        tried += (tried.empty() ? "" : ", ") + path + " (absent)";
        continue;
      }
      lib = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib != nullptr) break;
      const char* why = dlerror();
      tried += (tried.empty() ? "" : ", ") + path + " (" +
               (why != nullptr ? why : "dlopen failed") + ")";
    }
    if (lib == nullptr) {
      a.error =
          "SentencePiece support is not available: cannot load "
          "libdptrain_sentencepiece.so (tried " +
          tried + "; set DPTRAIN_SENTENCEPIECE_SHIM to its path)";
      return a;
    }
    const auto sym = [&](const char* name) {
      void* f = dlsym(lib, name);
      if (f == nullptr && a.error.empty()) {
        a.error = std::string("libdptrain_sentencepiece.so lacks ") + name;
      }
      return f;
    };
    a.load = reinterpret_cast<decltype(a.load)>(sym("dptrain_spm_load"));
    a.free_handle =
        reinterpret_cast<decltype(a.free_handle)>(sym("dptrain_spm_free"));
    a.free_buffer = reinterpret_cast<decltype(a.free_buffer)>(
        sym("dptrain_spm_free_buffer"));
    a.id = reinterpret_cast<decltype(a.id)>(sym("dptrain_spm_id"));
    a.encode = reinterpret_cast<decltype(a.encode)>(sym("dptrain_spm_encode"));
    a.decode = reinterpret_cast<decltype(a.decode)>(sym("dptrain_spm_decode"));
    a.train = reinterpret_cast<decltype(a.train)>(sym("dptrain_spm_train"));
    return a;
  }();
  return api;
}

// The loaded API; throws DatasetError naming `what` when it is not there.
const SpmApi& require_spm(const char* what) {
  const auto& api = spm_api();
  if (!api.error.empty()) throw DatasetError(what, api.error);
  return api;
}

constexpr std::size_t kErrorSize = 1024;

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& bytes, std::string label)
      : label_(std::move(label)), bytes_(bytes) {
    const auto& api = require_spm(label_.c_str());
    char error[kErrorSize] = {0};
    handle_ = api.load(bytes.data(), bytes.size(), 1, error, kErrorSize);
    if (handle_ == nullptr) {
      throw DatasetError(label_,
                         std::string("not a SentencePiece model: ") + error);
    }
    vocab_ = api.id(handle_, 0);
    bos_ = api.id(handle_, 1);
    eos_ = api.id(handle_, 2);
    pad_ = api.id(handle_, 3);
  }
  ~SentencePieceTokenizer() override { spm_api().free_handle(handle_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::string name() const override { return "sentencepiece:" + label_; }
  std::int64_t vocab_size() const override { return vocab_; }
  std::vector<std::int32_t> encode(const std::string& text) const override {
    const auto& api = spm_api();
    int* ids = nullptr;
    std::size_t count = 0;
    char error[kErrorSize] = {0};
    if (api.encode(handle_, text.data(), text.size(), &ids, &count, error,
                   kErrorSize) == 0) {
      throw std::runtime_error(label_ + ": cannot encode: " + error);
    }
    std::vector<std::int32_t> out(ids, ids + count);
    api.free_buffer(ids);
    return out;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    for (const auto id : ids) {
      if (id < 0 || id >= vocab_) {
        throw std::invalid_argument(label_ + ": id " + std::to_string(id) +
                                    " is outside the vocabulary [0, " +
                                    std::to_string(vocab_) + ")");
      }
    }
    const auto& api = spm_api();
    const std::vector<int> in(ids.begin(), ids.end());
    char* text = nullptr;
    std::size_t size = 0;
    char error[kErrorSize] = {0};
    if (api.decode(handle_, in.data(), in.size(), &text, &size, error,
                   kErrorSize) == 0) {
      throw std::runtime_error(label_ + ": cannot decode: " + error);
    }
    std::string out(text, size);
    api.free_buffer(text);
    return out;
  }
  std::int32_t bos_id() const override { return bos_; }
  std::int32_t eos_id() const override { return eos_; }
  std::int32_t pad_id() const override {
    if (pad_ >= 0) return pad_;
    if (eos_ >= 0) return eos_;
    return 0;
  }
  std::string serialized() const override { return bytes_; }

 private:
  std::string label_;
  std::string bytes_;  // the model file: a serialized ModelProto
  void* handle_ = nullptr;
  std::int64_t vocab_ = 0;
  std::int32_t bos_ = -1, eos_ = -1, pad_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> byte_tokenizer() {
  return std::make_unique<ByteTokenizer>();
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw DatasetError(path, std::filesystem::exists(path, ec)
                                 ? "is not a regular file (expected a "
                                   "SentencePiece tokenizer.model)"
                                 : "no such file (expected a SentencePiece "
                                   "tokenizer.model)");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in && !in.eof()) throw DatasetError(path, "read error");
  return std::make_unique<SentencePieceTokenizer>(bytes.str(), path);
}

std::unique_ptr<Tokenizer> sentencepiece_from_bytes(const std::string& bytes,
                                                    const std::string& label) {
  return std::make_unique<SentencePieceTokenizer>(bytes, label);
}

void train_sentencepiece(const std::string& args) {
  const auto& api = require_spm("SentencePiece trainer");
  char error[kErrorSize] = {0};
  if (api.train(args.c_str(), error, kErrorSize) == 0) {
    throw std::invalid_argument(std::string("SentencePiece training: ") +
                                error);
  }
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (path.empty() || path == "bytes") return byte_tokenizer();
  return load_sentencepiece(path);
}

}  // namespace dptrain::datasets
