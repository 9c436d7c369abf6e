#!/usr/bin/env bash
# Download the original CMU COCO body model (Caffe) into model/_trained_COCO/ and verify it.
# Sources are tried in order, each download checked by size and sha256: the URLs in
# CAFFEMODEL_URL (if set; several separated by spaces), CMU's server (down since 2020), then the
# copy in the camenduru/openpose repository on Hugging Face.
# Then: python dump_caffe_layers.py && python caffe_to_keras.py (from the repository root).
# The same weights as PyTorch's body_pose_model.pth: bash model/get_cmu_model.sh.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # also when started as `sh ...`
set -euo pipefail
. "$(dirname "$0")/fetch.sh"

MIRRORS=(
    "http://posefs1.perception.cs.cmu.edu/OpenPose/models/pose/coco/pose_iter_440000.caffemodel"
    "https://huggingface.co/camenduru/openpose/resolve/main/models/pose/coco/pose_iter_440000.caffemodel"
)
SIZE=209274056
SHA256=b4cf475576abd7b15d5316f1ee65eb492b5c9f5865e70a2e7882ed31fb682549
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
    if [ "$hash" != "$SHA256" ]; then
        echo "$1 has sha256 $hash, expected $SHA256" >&2
        return 1
    fi
}

read -r -a OVERRIDE <<<"${CAFFEMODEL_URL:-}"
fetch_checked "$DEST" ${OVERRIDE[@]+"${OVERRIDE[@]}"} "${MIRRORS[@]}"
