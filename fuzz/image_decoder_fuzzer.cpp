// libFuzzer target: decode_image on arbitrary bytes must either throw
// DatasetError or return an image whose pixel count matches its shape; the
// image then goes through with_channels and resize_center_crop.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/image_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  using namespace dptrain::datasets;
  try {
    // A small pixel cap keeps a forged header from asking for ~1 GB.
    const DecodedImage image =
        decode_image(data, size, "fuzz.img", std::int64_t{1} << 16);
    if (image.height < 1 || image.width < 1 ||
        (image.channels != 1 && image.channels != 3) ||
        image.pixels.size() !=
            static_cast<std::size_t>(image.height * image.width *
                                     image.channels)) {
      std::abort();  // the shape disagrees with the pixels
    }
    const DecodedImage grey = with_channels(image, 1);
    const DecodedImage small = resize_center_crop(grey, 5, 7);
    if (small.pixels.size() != 35) std::abort();
  } catch (const DatasetError&) {
  }
  return 0;
}
