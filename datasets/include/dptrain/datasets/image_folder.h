// Image data sets as users keep them: a folder per class of JPEG/PNG files
// (ImageNet's train layout, torchvision's ImageFolder), or a CSV file listing
// `path,label[,group][,split]` (Camelyon17-WILDS, CheXpert metadata). Images
// are decoded in worker threads into one in-memory ImageDataset.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/datasets/image_dataset.h"

namespace dptrain::datasets {

/// How images become one tensor.
struct ImageFolderOptions {
  /// Output size: each image is scaled to cover height × width and cut
  /// around its centre (resize_center_crop). 0 × 0 keeps the images' own
  /// size, which must then be the same for all of them.
  std::int64_t height = 0;
  std::int64_t width = 0;
  /// 1 (grey) or 3 (RGB); 0 = 3 when any image of the split is colour,
  /// else 1.
  std::int64_t channels = 0;
  /// Decoding threads; 0 = the hardware's count.
  int threads = 0;
  /// Leave out images that fail to decode (each is listed in the report)
  /// instead of stopping at the first with its error.
  bool skip_corrupt = false;
  /// Called with (images done, images in the split) as decoding proceeds,
  /// from one thread at a time (a progress bar); may be empty.
  std::function<void(std::int64_t, std::int64_t)> on_progress;
};

/// What a load did, for the log.
struct ImageLoadReport {
  std::int64_t decoded = 0;
  std::vector<std::string> skipped;  ///< "<file>: <what is wrong>"
  double seconds = 0.0;              ///< wall time of decoding and resizing
  /// Name of each label: class folder names, the CSV's label names, or the
  /// CSV's integer labels as text.
  std::vector<std::string> class_names;
};

/// True when `path` is a folder whose subfolders (or those of its train/,
/// val/, test/ subfolders) hold .jpg/.jpeg/.png files.
bool is_image_folder(const std::string& path);

/// "train", "val", "test" (those present) when `root` has such subfolders,
/// each laid out by class; otherwise "all" (`root` itself is by class).
std::vector<std::string> image_folder_splits(const std::string& root);

/// The images of one split of an image folder: class c is the c-th class
/// folder name in byte order over all splits (so that train and val agree),
/// files in byte order within each. Subfolders without images are not
/// classes; other files are ignored. Throws DatasetError naming the file for
/// an image that cannot be decoded (unless skip_corrupt), images of
/// different sizes with no output size, or a split with no images;
/// std::invalid_argument for a split the folder lacks or bad options.
ImageDataset load_image_folder(const std::string& root,
                               const std::string& split,
                               const ImageFolderOptions& options = {},
                               ImageLoadReport* report = nullptr);

/// The splits of a CSV data set: the values of its `split` column in order
/// of first appearance, or "all" when it has none.
std::vector<std::string> image_csv_splits(const std::string& csv);

/// The images a CSV file lists for `split`. Its header names the columns:
/// `path` (relative to the CSV's folder unless absolute), `label` (integers
/// >= 0, used as they are; otherwise names, numbered in byte order), and
/// optionally `group` (integers >= -1: hospital, demographic) and `split`.
/// Fields are comma-separated, without quoting. Errors name the file and
/// line (DatasetError), as load_image_folder's do.
ImageDataset load_image_csv(const std::string& csv, const std::string& split,
                            const ImageFolderOptions& options = {},
                            ImageLoadReport* report = nullptr);

}  // namespace dptrain::datasets
