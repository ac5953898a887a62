#!/usr/bin/env bash
# Image folders and CSV lists of JPEG/PNG files through the CLI: `data info`
# reads them, `data convert` writes our HDF5 layout (resized, splits kept),
# `train --dataset` trains on the folder and on the converted file, and a
# corrupt image is an error naming it unless --skip-corrupt.
# Usage: image_data_test.sh DPTRAIN_BINARY
set -euo pipefail
dptrain=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
# Three tiny images (made with libpng / libjpeg): an 8x8 grey PNG, a 12x10
# RGB PNG and a 10x12 RGB JPEG.
png_grey=iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAAXNSR0IArs4c6QAAADBJREFUCJk9yLENACAQw0Chj8fIKOy/SnagoQjC1clruykAkDnTFHcpTwqVAvkwcAHGDQ1GkkJdwAAAAABJRU5ErkJggg==
png_rgb=iVBORw0KGgoAAAANSUhEUgAAAAwAAAAKCAIAAAAPTiitAAAAAXNSR0IArs4c6QAAADdJREFUGJVjqJq+5eI7bg3XpPo5O699FtD1Sm9ZuO/2D1Ej/5zOZYcf/JUyDylkEiECjCoiThEA+0cr6e99xnMAAAAASUVORK5CYII=
jpeg_rgb=/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBT/wAARCAAMAAoDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDxT9nb4W/8ev7n07V9r2vwt/0WH9z/AADt7VxX7O3h6y/0X916V9r2vh6y+yw/uv4B/Kug5z//2Q==
put() { mkdir -p "$(dirname "$2")"; echo "$1" | base64 -d >"$2"; }
for split in train test; do
  for i in 1 2 3; do
    put "$png_grey" "images/$split/ankle boot/$i.png"
    put "$png_rgb" "images/$split/bag/$i.png"
    put "$jpeg_rgb" "images/$split/coat/$i.JPEG"
  done
done

"$dptrain" data info images >info.log 2>&1 && fail "data info accepted images of three sizes"
grep -q 'is 12 x 10 pixels but .* is 8 x 8' info.log || { cat info.log; fail "size error"; }
grep -q -- '--size H,W' info.log || fail "the size error does not say how to fix it"

"$dptrain" data convert images --to images.h5 --size 16,16 >convert.log 2>&1 ||
  { cat convert.log; fail "convert"; }
grep -q '^train: 9 images decoded in .* images/s), 0 skipped' convert.log ||
  { cat convert.log; fail "convert did not report its decoding rate"; }
"$dptrain" data info images.h5 --json >h5.json 2>&1 || { cat h5.json; fail "data info images.h5"; }
grep -q '"format": "hdf5"' h5.json || fail "images.h5 is not HDF5"
tr -d ' \n' <h5.json | grep -q '"train":{"count":9,"shape":\[3,16,16\],"classes":3,"class_counts":\[3,3,3\]' ||
  { cat h5.json; fail "converted train split"; }
tr -d ' \n' <h5.json | grep -q '"test":{"count":9' || fail "converted test split"

"$dptrain" train --dataset images.h5 --model cnn --recipe none --noise-multiplier 1 \
  --batch-size 4 --steps 2 --summary train.json >train.log 2>&1 || { cat train.log; fail "train on images.h5"; }
grep -q '"train_examples":9' train.json || fail "train did not read the 9 converted images"

# Training on the folder itself: --image-size scales it on load.
"$dptrain" train --dataset images --image-size 16,16 --model cnn --recipe none \
  --noise-multiplier 1 --batch-size 4 --steps 2 --summary folder.json >folder.log 2>&1 ||
  { cat folder.log; fail "train on the image folder"; }
grep -q '"train_examples":9' folder.json || fail "train did not read the folder's 9 images"
grep -q '"eval_examples":9' folder.json || fail "train did not evaluate on the folder's test split"
# Random-resized crops of the views (the config in the summary says so).
"$dptrain" train --dataset images --image-size 16,16 --model cnn --recipe none --augmult 2 \
  --augment-crop random-resized --crop-scale-min 0.3 --noise-multiplier 1 --batch-size 4 --steps 2 \
  --summary rrc.json >rrc.log 2>&1 || { cat rrc.log; fail "train with --augment-crop random-resized"; }
grep -q '"augment_crop":"random-resized"' rrc.json || fail "the summary does not record the crop"

# A CSV list (paths relative to it, names as labels, a group column).
{
  echo "path,label,group"
  echo "images/train/bag/1.png,bag,0"
  echo "images/train/bag/2.png,bag,1"
  echo "images/train/coat/1.JPEG,coat,1"
} >list.csv
"$dptrain" data convert list.csv --to list.h5 --channels 1 --size 10,12 >csv.log 2>&1 || { cat csv.log; fail "convert list.csv"; }
"$dptrain" data info list.h5 --json >list.json 2>&1 || fail "data info list.h5"
tr -d ' \n' <list.json | grep -q '"all":{"count":3,"shape":\[1,10,12\],"classes":2,"class_counts":\[2,1\],"has_groups":true' ||
  { cat list.json; fail "converted CSV"; }

# A corrupt image: an error naming it, or skipped and listed on request.
printf 'not an image' >"images/train/bag/4.png"
"$dptrain" data convert images --to bad.h5 --size 16,16 >bad.log 2>&1 && fail "convert accepted a corrupt image"
grep -q "error: images/train/bag/4.png: neither a JPEG nor a PNG" bad.log || { cat bad.log; fail "corrupt image error"; }
[[ ! -e bad.h5 ]] || fail "a failed convert left bad.h5"
"$dptrain" data convert images --to skip.h5 --size 16,16 --skip-corrupt >skip.log 2>&1 ||
  { cat skip.log; fail "convert --skip-corrupt"; }
grep -q '^train: 9 images decoded .* 1 skipped' skip.log || { cat skip.log; fail "skip count"; }
grep -q '^skipped images/train/bag/4.png: ' skip.log || fail "the skipped image is not listed"
echo "1 passed, 0 failed"
