"""Train the pose network: flags with the original's defaults (``python training/train_pose.py``).

Keras is imported only once the flags are parsed, so ``--help`` and usage errors are quick.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rtpose.errors import RtposeError
from rtpose.files import INTERRUPTED_EXIT
from rtpose.stream.images import check_folder_writable
from rtpose.tools.common import add_verbose_arg, start_tensorflow
from rtpose.train.cluster import read_tf_config
from rtpose.train.config import LAST_CHECKPOINT, VGG19_FILE, TrainConfig


def _servers(text: str) -> tuple[str, ...]:
    servers = tuple(s.strip() for s in text.split(",") if s.strip())
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"expected host:port, got {server!r}")
    if not servers:
        raise argparse.ArgumentTypeError("expected at least one host:port")
    return servers


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``train_pose.py``; defaults from :class:`TrainConfig`."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        description="Train the PAF pose network on augmented batches from dataset servers "
                    "(start them with training/dataset_server.py). Defaults are the original's.",
    )
    p.add_argument("--arch", default=d.arch,
                   help="network to train: cmu or mobilenet_thin (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="samples per iteration, over all devices with --distribute "
                        "(default: %(default)s)")
    p.add_argument("--base-lr", type=float, default=d.base_lr,
                   help="learning rate before the first drop (default: %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum, help="(default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="Caffe weight decay, on kernels only (default: %(default)s)")
    p.add_argument("--gamma", type=float, default=d.gamma,
                   help="learning-rate factor at each drop (default: %(default)s)")
    p.add_argument("--stepsize", type=int, default=d.stepsize,
                   help="iterations between learning-rate drops (default: %(default)s)")
    p.add_argument("--max-iter", type=int, default=d.max_iter,
                   help="iterations in all; epochs = ceil(max_iter / steps per epoch) "
                        "(default: %(default)s)")
    p.add_argument("--train-samples", type=int, default=d.train_samples,
                   help="samples per epoch: steps per epoch = train_samples // batch_size "
                        "(default: %(default)s)")
    p.add_argument("--val-samples", type=int, default=d.val_samples,
                   help="validation samples per epoch (default: %(default)s)")
    p.add_argument("--train-servers", type=_servers, default=",".join(d.train_servers),
                   help="comma-separated host:port list of training dataset servers "
                        "(default: %(default)s)")
    p.add_argument("--val-servers", type=_servers, default=",".join(d.val_servers),
                   help="comma-separated host:port list of validation dataset servers "
                        "(default: %(default)s)")
    p.add_argument("--weights-dir", type=Path, default=d.weights_dir,
                   help="checkpoints, training.csv and losses.png (default: training/weights "
                        "in the repository)")
    p.add_argument("--logs-dir", type=Path, default=d.logs_dir,
                   help="TensorBoard logs (default: training/logs in the repository)")
    p.add_argument("--crop-size", type=int, default=d.crop_size,
                   help="side of the servers' square crops (default: %(default)s)")
    p.add_argument("--steps-per-epoch", type=int, help="override train_samples // batch_size")
    p.add_argument("--val-steps", type=int, help="override val_samples // batch_size")
    p.add_argument("--epochs", type=int, help="override the epochs derived from --max-iter")
    init = p.add_mutually_exclusive_group()
    init.add_argument("--vgg-weights", type=Path,
                      help=f"Keras VGG19 no-top weights ({VGG19_FILE}) for the CMU front "
                           "(default: keras.applications' ImageNet download)")
    init.add_argument("--init-weights", type=Path,
                      help="start from these weights of --arch (fine-tuning)")
    init.add_argument("--from-scratch", action="store_true", help="random initialisation")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start over (new log) even if the weights dir holds last.keras")
    p.add_argument("--distribute", action="store_true",
                   help="data parallel over all local GPUs: MirroredStrategy on TensorFlow "
                        "(several hosts: set TF_CONFIG on each for "
                        "MultiWorkerMirroredStrategy), keras.distribution.DataParallel on JAX "
                        "(several hosts: set KERAS_DISTRIBUTION_JOB_ADDRESSES, "
                        "_NUM_PROCESSES, _PROCESS_ID)")
    p.add_argument("--timeout", type=float, default=d.timeout,
                   help="seconds to wait for a batch before giving up on the servers "
                        "(default: %(default)s)")
    p.add_argument("--stages", type=int, default=d.stages, help=argparse.SUPPRESS)
    add_verbose_arg(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run described by parsed flags."""
    return TrainConfig(**{k: v for k, v in vars(args).items() if k != "verbose"})


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags and train; a user error ends with one line on stderr and exit 1, Ctrl+C
    or SIGTERM with one line and exit 130."""
    args = build_parser().parse_args(argv)
    weights_dir = args.weights_dir
    try:
        config = config_from_args(args)
        cluster = read_tf_config(os.environ.get("TF_CONFIG")) if args.distribute else None
        if cluster is not None:  # checked before Keras loads; its tasks write to sub-folders
            weights_dir = cluster.folder(weights_dir)
        check_folder_writable(config.logs_dir, "--logs-dir")  # --weights-dir: its FolderLock
        if importlib.util.find_spec("tensorflow") is not None:
            start_tensorflow(args.verbose)  # its start-up lines dropped, before Keras starts it
        from rtpose.train.trainer import train

        train(config)
    except RtposeError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        checkpoint = weights_dir / LAST_CHECKPOINT
        kept = (f"{checkpoint} holds the last completed epoch; run the same command to resume"
                if checkpoint.is_file() else "no epoch was completed")
        print(f"interrupted: {kept}", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)


if __name__ == "__main__":
    main()
