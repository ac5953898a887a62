// A C interface to libsentencepiece, built as its own module and loaded by
// datasets/src/tokenizer.cpp with dlmopen(LM_ID_NEWLM): in a link-map
// namespace of its own, with its own copies of libstdc++ and libc.
//
// Why: Debian's libsentencepiece carries its own copy of protobuf-lite and
// exports its symbols. Linked into a program that also loads LibTorch's
// libprotobuf, those symbols interpose on libprotobuf's and the program
// crashes in libprotobuf's static initialisers, before main(). dlopen with
// RTLD_LOCAL is not enough (its protobuf references then bind to
// libprotobuf 3.21, and its 3.14 code refuses to run), nor is RTLD_DEEPBIND
// (libstdc++'s std::cerr then binds to an uninitialised copy and the first
// log line crashes). In a namespace of its own nothing is shared.
//
// So only plain data crosses: every function catches everything (no C++
// exception crosses the C boundary), and buffers returned here are malloc'd
// by this namespace's libc: free them with dptrain_spm_free_buffer.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace {

void set_error(char* error, std::size_t size, const std::string& text) {
  if (error == nullptr || size == 0) return;
  const auto n = std::min(size - 1, text.size());
  std::memcpy(error, text.data(), n);
  error[n] = '\0';
}

template <typename T>
bool copy_out(const T* data, std::size_t count, T** out) {
  *out = static_cast<T*>(std::malloc(count * sizeof(T) + 1));
  if (*out == nullptr) return false;
  if (count > 0) std::memcpy(*out, data, count * sizeof(T));
  return true;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* dptrain_spm_load(
    const char* data, std::size_t size, int from_bytes, char* error,
    std::size_t error_size) {
  try {
    auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status =
        from_bytes != 0
            ? processor->LoadFromSerializedProto(std::string(data, size))
            : processor->Load(std::string(data, size));
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return nullptr;
    }
    return processor.release();
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown error");
  }
  return nullptr;
}

__attribute__((visibility("default"))) void dptrain_spm_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

__attribute__((visibility("default"))) void dptrain_spm_free_buffer(
    void* buffer) {
  std::free(buffer);
}

// 0 GetPieceSize, 1 bos_id, 2 eos_id, 3 pad_id.
__attribute__((visibility("default"))) int dptrain_spm_id(void* handle,
                                                          int which) {
  const auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  switch (which) {
    case 0:
      return p->GetPieceSize();
    case 1:
      return p->bos_id();
    case 2:
      return p->eos_id();
    default:
      return p->pad_id();
  }
}

__attribute__((visibility("default"))) int dptrain_spm_encode(
    void* handle, const char* text, std::size_t size, int** ids,
    std::size_t* count, char* error, std::size_t error_size) {
  try {
    std::vector<int> out;
    const auto status =
        static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(
            std::string(text, size), &out);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return 0;
    }
    *count = out.size();
    return copy_out(out.data(), out.size(), ids) ? 1 : 0;
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  }
  return 0;
}

__attribute__((visibility("default"))) int dptrain_spm_decode(
    void* handle, const int* ids, std::size_t count, char** text,
    std::size_t* size, char* error, std::size_t error_size) {
  try {
    std::string out;
    const auto status =
        static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(
            std::vector<int>(ids, ids + count), &out);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return 0;
    }
    *size = out.size();
    return copy_out(out.data(), out.size(), text) ? 1 : 0;
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  }
  return 0;
}

__attribute__((visibility("default"))) int dptrain_spm_train(
    const char* args, char* error, std::size_t error_size) {
  try {
    const auto status = sentencepiece::SentencePieceTrainer::Train(args);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return 0;
    }
    return 1;
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  }
  return 0;
}

}  // extern "C"
