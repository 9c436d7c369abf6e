#!/usr/bin/env bash
# Download the original CMU COCO body model (Caffe) into model/_trained_COCO/ and verify it.
# Then: python dump_caffe_layers.py && python caffe_to_keras.py (from the repository root).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # also when started as `sh ...`
set -euo pipefail
. "$(dirname "$0")/fetch.sh"

URL="http://posefs1.perception.cs.cmu.edu/OpenPose/models/pose/coco/pose_iter_440000.caffemodel"
SIZE=209274056
SHA256_START=b4cf4755
SHA256_END=82549
DEST="$(cd "$(dirname "$0")" && pwd)/_trained_COCO/pose_iter_440000.caffemodel"

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

check() {  # file; prints the problem and fails if the file is not the expected model
    local size hash
    size=$(wc -c <"$1" | tr -d ' ')
    if [ "$size" != "$SIZE" ]; then
        echo "$1 has $size bytes, expected $SIZE" >&2
        return 1
    fi
    hash=$(sha256 "$1")
    case "$hash" in
        "$SHA256_START"*"$SHA256_END") ;;
        *) echo "$1 has sha256 $hash, expected $SHA256_START...$SHA256_END" >&2
           return 1 ;;
    esac
}

fetch_checked "$URL" "$DEST"
