"""Command line: write the ``mask_miss`` / ``mask_all`` PNGs of a COCO split.

python training/generate_masks.py --mode train --dataset-dir dataset
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rtpose.coco.layout import MODES, CocoSplit
from rtpose.coco.masks import write_masks
from rtpose.errors import RtposeError
from rtpose.files import INTERRUPTED_EXIT, sigterm_as_interrupt


def parse_args(argv: list[str] | None, dataset_dir: str | Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write the loss masks (mask_miss_%%012d.png, mask_all_%%012d.png) of every "
        "image of a COCO person-keypoints split. Default layout: see dataset/README.md."
    )
    parser.add_argument("--mode", choices=MODES, default="train", help="COCO split (train)")
    parser.add_argument(
        "--dataset-dir", default=str(dataset_dir), help="dataset root (%(default)s)"
    )
    parser.add_argument("--annotations", help="annotation JSON (default: the layout's)")
    parser.add_argument("--images", help="image folder (default: the layout's)")
    parser.add_argument("--masks-dir", help="output folder (default: DATASET_DIR/{mode}mask2017)")
    parser.add_argument("--force", action="store_true", help="rewrite masks that already exist")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, dataset_dir: str | Path = "dataset") -> None:
    """Run the command; ``dataset_dir`` is the default of ``--dataset-dir``."""
    args = parse_args(argv, dataset_dir)
    split = CocoSplit.from_dataset_dir(args.dataset_dir, args.mode)
    images = args.images or split.images
    masks_dir = args.masks_dir or split.masks
    try:
        coco = CocoSplit(args.annotations or split.annotations, images, masks_dir).load()
        start = time.perf_counter()
        with sigterm_as_interrupt():
            written = write_masks(coco, images, masks_dir, force=args.force)
    except RtposeError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        print("interrupted: the masks written so far are complete; run the same command to go on "
              "(it skips them)", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    skipped = len(coco.imgs) - written
    print(
        f"wrote masks of {written} images to {masks_dir} in {time.perf_counter() - start:.1f} s"
        + (f" ({skipped} already done; --force rewrites them)" if skipped else "")
    )


if __name__ == "__main__":
    main()
