#!/usr/bin/env bash
# Download COCO 2017 train/val images and annotations (about 19 GB) into this folder:
#   annotations/person_keypoints_{train,val}2017.json, train2017/*.jpg, val2017/*.jpg
# Usage: bash dataset/get_dataset.sh        (from anywhere; needs wget or curl, and unzip)
# Interrupted downloads resume; parts already unzipped are skipped. Zips are removed after
# unzipping unless KEEP_ZIPS=1.
set -euo pipefail
cd "$(dirname "$0")"

BASE_URL="http://images.cocodataset.org"

fetch() {  # fetch URL FILE: resumable download
    if command -v wget >/dev/null 2>&1; then
        wget --continue --progress=bar:force -O "$2" "$1"
    elif command -v curl >/dev/null 2>&1; then
        curl --fail --location --continue-at - --output "$2" "$1"
    else
        echo "error: neither wget nor curl is installed" >&2
        exit 1
    fi
}

get_zip() {  # get_zip URL_PATH MARKER: download and unzip unless MARKER already exists
    local url="$BASE_URL/$1" zip marker="$2"
    zip="$(basename "$1")"
    if [ -e "$marker" ]; then
        echo "$marker exists, skipping $zip"
        return
    fi
    if [ ! -e "$zip" ]; then
        echo "Downloading $url ..."
        fetch "$url" "$zip.part"
        mv "$zip.part" "$zip"
    fi
    echo "Unzipping $zip ..."
    unzip -q -o "$zip"
    [ "${KEEP_ZIPS:-0}" = 1 ] || rm -f "$zip"
}

command -v unzip >/dev/null 2>&1 || { echo "error: unzip is not installed" >&2; exit 1; }

get_zip annotations/annotations_trainval2017.zip annotations/person_keypoints_val2017.json
get_zip zips/val2017.zip val2017/000000000139.jpg
get_zip zips/train2017.zip train2017/000000000009.jpg

echo "COCO 2017 is in $(pwd). Next: python training/generate_masks.py --mode train (and --mode val)"
