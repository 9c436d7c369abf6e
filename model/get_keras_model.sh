#!/usr/bin/env bash
# Download the original port's converted CMU model (Keras 2 HDF5, about 209 MB) into
# model/keras/model.h5; rtpose reads it with rtpose.models.cmu.load_cmu_weights.
# Its 2017 link may be gone: bash model/get_cmu_model.sh puts the same model in place from
# Hugging Face (or bash model/get_caffe_model.sh, then python dump_caffe_layers.py and
# python caffe_to_keras.py).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # also when started as `sh ...`
set -euo pipefail
. "$(dirname "$0")/fetch.sh"

URL="https://www.dropbox.com/s/llpxd14is7gyj0z/model.h5?dl=1"
MIN_SIZE=150000000  # the original is about 209 MB
MAX_SIZE=260000000
HDF5_SIGNATURE="894844460d0a1a0a"
DEST="$(cd "$(dirname "$0")" && pwd)/keras/model.h5"

check() {  # file; prints the problem and fails if the file is not a plausible model.h5
    local size signature
    size=$(wc -c <"$1" | tr -d ' ')
    if [ "$size" -lt "$MIN_SIZE" ] || [ "$size" -gt "$MAX_SIZE" ]; then
        echo "$1 has $size bytes, expected about 209 MB" >&2
        return 1
    fi
    signature=$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')
    if [ "$signature" != "$HDF5_SIGNATURE" ]; then
        echo "$1 is not an HDF5 file (a web page instead of the model?)" >&2
        return 1
    fi
}

fetch_checked "$DEST" "$URL"
