"""The CMU COCO body model's living source: ``body_pose_model.pth`` on Hugging Face.

CMU's own server for ``pose_iter_440000.caffemodel`` has not answered since 2020. The copy the
community uses today is the PyTorch conversion of those Caffe weights that ControlNet's
annotators download: repository ``lllyasviel/Annotators``, pinned here to one revision and
checked by size and sha256. It is a plain state dict keyed by the Caffe layer names
(``conv1_1.weight`` .. ``Mconv7_stage6_L2.bias``), kernels (out, in, kh, kw).

The download goes through ``huggingface_hub.hf_hub_download``, so its cache (``HF_HOME``,
``HF_HUB_CACHE``), resumed downloads, ``HF_ENDPOINT`` mirrors, ``HF_HUB_OFFLINE`` and tokens
apply.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rtpose.errors import FetchError
from rtpose.files import sha256

REPO_ID = "lllyasviel/Annotators"
FILENAME = "body_pose_model.pth"
REVISION = "982e7edaec38759d914a963c48c4726685de7d96"
SIZE = 209_267_595
SHA256 = "25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746"
DEFAULT_ENDPOINT = "https://huggingface.co"
BY_HAND = "bash model/get_cmu_model.sh --pth FILE"


def endpoint(override: str | None = None) -> str:
    """The Hub address a download goes to: ``override``, else huggingface_hub's setting
    (``HF_ENDPOINT``), else huggingface.co."""
    if override:
        return override.rstrip("/")
    try:
        from huggingface_hub import constants
    except ImportError:
        return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    return constants.ENDPOINT


def file_url(hub: str) -> str:
    """The pinned file's download address on the Hub ``hub``."""
    return f"{hub}/{REPO_ID}/resolve/{REVISION}/{FILENAME}"


def _by_hand(hub: str) -> str:
    return (
        f"to put it in place by hand, download {file_url(hub)} where there is internet, "
        f"copy it here and run `{BY_HAND}`"
    )


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """Keep the hub's retry warnings off the terminal: a failure is reported as one line."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def download_pth(hub: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """``body_pose_model.pth`` at the pinned revision, from the Hugging Face cache or downloaded
    into it; ``FetchError`` with one line naming what was tried when it cannot be had."""
    hub = endpoint(hub)
    tried = f"{FILENAME} of {REPO_ID} at revision {REVISION} from {hub}"
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import LocalEntryNotFoundError
    except ImportError as e:
        raise FetchError(
            f"cannot download {tried}: huggingface_hub is not installed "
            f"(pip install huggingface_hub); {_by_hand(hub)}"
        ) from e
    try:
        with _quiet_hub():
            path = hf_hub_download(
                REPO_ID, FILENAME, revision=REVISION, endpoint=hub, cache_dir=cache_dir
            )
    except LocalEntryNotFoundError as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
        reason = "HF_HUB_OFFLINE is set" if offline else "no connection"
        raise FetchError(
            f"cannot download {tried}: {reason}, and no copy in the Hugging Face cache; "
            f"{_by_hand(hub)}"
        ) from e
    # The hub raises its own errors, OSError and its HTTP client's errors (requests or httpx by
    # version): each is reported by its type and first line.
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise FetchError(
            f"cannot download {tried}: {type(e).__name__}: {reason}; {_by_hand(hub)}"
        ) from e
    return Path(path)


def check_pth(path: str | Path, remedy: str) -> Path:
    """``path`` if it is the pinned ``body_pose_model.pth`` (size, then sha256), else
    ``FetchError`` saying what differs, followed by ``remedy``."""
    path = Path(path)
    if not path.is_file():
        raise FetchError(f"{FILENAME} not found: {path}")
    size = path.stat().st_size
    if size != SIZE:
        raise FetchError(
            f"{path} has {size:,} bytes, {FILENAME} has {SIZE:,} "
            f"({'truncated' if size < SIZE else 'another file'}); {remedy}"
        )
    digest = sha256(path)
    if digest != SHA256:
        raise FetchError(f"{path} has sha256 {digest}, {FILENAME} has {SHA256}; {remedy}")
    return path
