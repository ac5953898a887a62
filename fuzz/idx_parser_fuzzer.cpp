// libFuzzer target: parse_idx on arbitrary bytes must either throw
// DatasetError or return a payload view that lies inside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/idx_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  using namespace dptrain::datasets;
  try {
    const IdxArray a = parse_idx(data, size, "fuzz.idx");
    if (a.data < data || a.data + a.data_bytes != data + size ||
        a.num_elements() * idx_element_size(a.type) != a.data_bytes) {
      std::abort();  // the view disagrees with the buffer or the header
    }
    // Touch every payload byte so ASan sees any out-of-range view.
    unsigned sum = 0;
    for (std::size_t i = 0; i < a.data_bytes; ++i) sum += a.data[i];
    volatile unsigned sink = sum;
    (void)sink;
  } catch (const DatasetError&) {
  }
  return 0;
}
