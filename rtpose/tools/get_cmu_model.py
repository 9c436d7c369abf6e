"""Put the CMU COCO body model (and with --hands / --face OpenPose's hand and face networks) in
place from a living source, without PyTorch.

Downloads body_pose_model.pth (the PyTorch conversion of CMU's Caffe weights; hand_pose_model.pth
and facenet.pth for --hands and --face) from Hugging Face at a pinned revision through
huggingface_hub (its cache, resumed downloads and HF_ENDPOINT / HF_HUB_OFFLINE settings apply),
checks its size and sha256, and converts it to model/keras/model.weights.h5
(hand.weights.h5, face.weights.h5), which demo_image.py and the other scripts then use with no
flag. --pth FILE converts a copy already on disk instead, with no network (each network's file
is recognised by its name or size). The CMU weights are for non-commercial use only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rtpose.convert import cmu_source
from rtpose.convert.pth import pth_shapes, read_pth
from rtpose.convert.state_dict import convert_pth, network_of_state
from rtpose.errors import ConversionError
from rtpose.models import PART_NETWORKS
from rtpose.stream.images import check_folder_writable, check_writable
from rtpose.tools.common import add_verbose_arg, one_line_errors, start_tensorflow

OUTPUT = Path("model/keras/model.weights.h5")


def _network_of(pth: Path, verify: bool) -> str:
    """The network a given ``.pth`` is for: by its name or size, or unverified by its tensors."""
    if verify:
        return cmu_source.network_of_file(pth)
    return network_of_state(read_pth(pth, progress=False)) or "body"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pth", type=Path, action="append",
                        help="convert this body_pose_model.pth (or hand_pose_model.pth, "
                        "facenet.pth), no download; may be given once per file")
    parser.add_argument("--hands", action="store_true",
                        help="also the hand network (hand_pose_model.pth -> "
                        f"{PART_NETWORKS['hand'].weights})")
    parser.add_argument("--face", action="store_true",
                        help="also the face network (facenet.pth -> "
                        f"{PART_NETWORKS['face'].weights})")
    parser.add_argument("--no-body", action="store_true",
                        help="with --hands or --face: not the body model")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="with --pth: skip the size and sha256 check, to convert another "
        ".pth of the CMU model's layers and shapes",
    )
    parser.add_argument(
        "--endpoint",
        help="Hugging Face Hub address (default: HF_ENDPOINT, else https://huggingface.co)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="huggingface_hub cache folder (default: its own, HF_HUB_CACHE)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="repository root that the default output is relative to",
    )
    parser.add_argument("--output", type=Path, help=f"Keras weights (default: ROOT/{OUTPUT})")
    parser.add_argument(
        "--timeout", type=float, default=cmu_source.TIMEOUT_S,
        help="seconds the server may take to answer, per try, before trying again "
        f"({cmu_source.TRIES} tries; default {cmu_source.TIMEOUT_S:g})")
    add_verbose_arg(parser)
    args = parser.parse_args(argv)
    if args.no_verify and args.pth is None:
        parser.error("--no-verify only applies to a file given with --pth")
    if not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    outputs = {"body": args.output or args.root / OUTPUT}
    outputs.update({name: args.root / spec.weights for name, spec in PART_NETWORKS.items()})
    with one_line_errors():
        # Before downloading and converting: where the weights go.
        for output in outputs.values():
            if not output.name.endswith(".weights.h5"):
                raise ConversionError(f"--output must end with .weights.h5: {output}")
            check_folder_writable(output.parent, "--output's folder")
            if output.parent.is_dir():
                check_writable(output)
        if args.pth is not None:
            jobs = [(_network_of(pth, not args.no_verify), pth) for pth in args.pth]
            for network, pth in jobs:
                if not args.no_verify:
                    cmu_source.check_pth(pth, "pass --no-verify to convert it all the same",
                                         network)
        else:
            networks = [n for n, wanted in (("body", not args.no_body), ("hand", args.hands),
                                            ("face", args.face)) if wanted]
            if not networks:
                parser.error("--no-body leaves nothing to fetch: add --hands or --face")
            jobs = []
            for network in networks:
                pinned = cmu_source.pinned_file(network)
                print(f"fetching {pinned.filename} ({pinned.size / 1e6:.0f} MB) of "
                      f"{cmu_source.REPO_ID} from {cmu_source.endpoint(args.endpoint)}; "
                      f"{cmu_source.LICENCE}")
                jobs.append((network, cmu_source.download_checked(
                    network, args.endpoint, args.cache_dir, args.timeout)))
        for _, pth in jobs:
            pth_shapes(pth)  # a file that is not a state dict fails at once, before TensorFlow
        start_tensorflow(args.verbose)  # its start-up lines dropped, before Keras starts it
        for network, pth in jobs:
            convert_pth(pth, outputs[network], network=network)
            print(f"wrote {outputs[network]} from {pth}")


if __name__ == "__main__":
    main()
