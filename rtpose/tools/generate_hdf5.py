"""Command line: build ``train_dataset.h5`` and ``val_dataset.h5`` from COCO splits and masks.

python training/generate_hdf5.py --dataset-dir dataset --modes train val
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rtpose.coco.hdf5_dataset import DEFAULT_VAL_SIZE, write_hdf5
from rtpose.coco.layout import MODES, CocoSplit
from rtpose.coco.masks import mask_paths
from rtpose.coco.selection import ImageRecord, image_records
from rtpose.errors import RtposeError
from rtpose.files import INTERRUPTED_EXIT, sigterm_as_interrupt


def parse_args(argv: list[str] | None, dataset_dir: str | Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write the original training dataset: one sample per COCO image with at "
        "least one usable person; the first --val-size samples form the validation file."
    )
    parser.add_argument(
        "--dataset-dir", default=str(dataset_dir), help="dataset root (%(default)s)"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="COCO splits in the dataset root's layout, in this order (train val)",
    )
    parser.add_argument(
        "--split",
        nargs=3,
        action="append",
        metavar=("ANNOTATIONS", "IMAGES", "MASKS"),
        help="an explicit split (repeatable); replaces --modes",
    )
    parser.add_argument(
        "--val-size",
        type=int,
        default=DEFAULT_VAL_SIZE,
        help=f"number of samples for the validation file ({DEFAULT_VAL_SIZE})",
    )
    parser.add_argument("--output-dir", help="where the .h5 files go (default: --dataset-dir)")
    return parser.parse_args(argv)


def collect_records(splits: list[CocoSplit]) -> list[ImageRecord]:
    """The samples of every split in order; all their masks must exist already."""
    records: list[ImageRecord] = []
    for split in splits:
        records += image_records(split.load(), split.images, split.masks)
    for record in records:
        if not all(path.is_file() for path in mask_paths(record.masks_dir, record.image_id)):
            raise RtposeError(
                f"masks of image {record.image_id} not found in {record.masks_dir}; "
                f"run training/generate_masks.py first"
            )
    return records


def main(argv: list[str] | None = None, dataset_dir: str | Path = "dataset") -> None:
    """Run the command; ``dataset_dir`` is the default of ``--dataset-dir``."""
    args = parse_args(argv, dataset_dir)
    if args.split:
        splits = [CocoSplit(*map(Path, paths)) for paths in args.split]
    else:
        splits = [CocoSplit.from_dataset_dir(args.dataset_dir, mode) for mode in args.modes]
    output_dir = Path(args.output_dir or args.dataset_dir)
    try:
        start = time.perf_counter()
        with sigterm_as_interrupt():
            records = collect_records(splits)
            n_train, n_val = write_hdf5(records, output_dir / "train_dataset.h5",
                                        output_dir / "val_dataset.h5", args.val_size)
    except RtposeError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        print("interrupted: the file being written was discarded", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    print(
        f"wrote {n_train} training and {n_val} validation samples to {output_dir} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    if n_train == 0:
        print(f"note: --val-size {args.val_size} took every sample; the training file is empty")


if __name__ == "__main__":
    main()
