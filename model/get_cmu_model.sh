#!/usr/bin/env bash
# Put the CMU COCO body model in place from a living source: body_pose_model.pth from Hugging
# Face (lllyasviel/Annotators, pinned revision; size and sha256 checked), converted without
# PyTorch to model/keras/model.weights.h5. Options are passed on: --pth FILE converts a copy
# already on disk (no network); --help lists the others. HF_ENDPOINT, HF_HOME, HF_HUB_CACHE and
# HF_HUB_OFFLINE are honoured.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # also when started as `sh ...`
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m rtpose.tools.get_cmu_model --root "$root" "$@"
