// A small SentencePiece model trained by the test itself (through
// datasets::train_sentencepiece) on a repetitive English text it writes:
// tests never depend on a downloaded tokenizer.model.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "dptrain/datasets/tokenizer.h"

namespace dptrain::test_support {

/// The text the model is trained on (one line per sentence).
inline std::string sentencepiece_corpus_line(int i) {
  return "the cat sat on the mat and the dog sat on the log " +
         std::to_string(i % 7);
}

/// Trains a BPE model of `vocab` pieces in `dir`; returns its path
/// (dir/sp.model).
inline std::string train_sentencepiece(const std::string& dir, int vocab) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 200; ++i)
      corpus << sentencepiece_corpus_line(i) << "\n";
  }
  datasets::train_sentencepiece(
      "--input=" + dir + "/corpus.txt --model_prefix=" + dir +
      "/sp --vocab_size=" + std::to_string(vocab) +
      " --model_type=bpe --character_coverage=1.0 --minloglevel=2"
      " --num_threads=1");
  return dir + "/sp.model";
}

}  // namespace dptrain::test_support
