"""The CMU models' living source: ``body_pose_model.pth`` (and the hand and face networks'
``hand_pose_model.pth`` and ``facenet.pth``) on Hugging Face.

CMU's own server for ``pose_iter_440000.caffemodel`` has not answered since 2020. The copy the
community uses today is the PyTorch conversion of those Caffe weights that ControlNet's
annotators download: repository ``lllyasviel/Annotators``, pinned here to one revision and
checked by size and sha256. It is a plain state dict keyed by the Caffe layer names
(``conv1_1.weight`` .. ``Mconv7_stage6_L2.bias``), kernels (out, in, kh, kw).

The download goes through ``huggingface_hub.hf_hub_download``, so its cache (``HF_HOME``,
``HF_HUB_CACHE``), resumed downloads, ``HF_ENDPOINT`` mirrors, ``HF_HUB_OFFLINE`` and tokens
apply. A copy already in the cache is used without asking the network (the revision is a commit
hash: it never changes). Otherwise the Hub is first asked once for the file's headers, with a
short timeout, a few times, each retry said on stderr; a server that does not answer is reported
as such (refused, unresolved, or connected but silent), not left to the hub's own retries
(minutes of silence). The CMU weights are licensed by CMU for non-commercial use only.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rtpose.errors import FetchError
from rtpose.files import sha256

REPO_ID = "lllyasviel/Annotators"
FILENAME = "body_pose_model.pth"
REVISION = "982e7edaec38759d914a963c48c4726685de7d96"
SIZE = 209_267_595
SHA256 = "25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746"
DEFAULT_ENDPOINT = "https://huggingface.co"
LICENCE = "the CMU weights are for non-commercial use only (CMU's OpenPose licence)"


@dataclass(frozen=True)
class PinnedFile:
    """One file of ``REPO_ID`` at ``REVISION``: its name, size in bytes and sha256."""

    filename: str
    size: int
    sha256: str


# The hand and face networks' files (rtpose.models.cmu_hand_face); the body's is FILENAME.
_PART_FILES = {
    "hand": PinnedFile("hand_pose_model.pth", 147_341_049,
                       "b76b00d1750901abd07b9f9d8c98cc3385b8fe834a26d4b4f0aad439e75fc600"),
    "face": PinnedFile("facenet.pth", 153_718_792,
                       "8beb52e548624ffcc4aed12af7aee7dcbfaeea420c75609fee999fe7add79d43"),
}
NETWORKS = ("body", *_PART_FILES)


def pinned_file(network: str = "body") -> PinnedFile:
    """The pinned ``.pth`` of ``network`` (``body``, ``hand`` or ``face``)."""
    if network == "body":
        return PinnedFile(FILENAME, SIZE, SHA256)
    return _PART_FILES[network]


def network_of_file(path: str | Path) -> str:
    """The network a ``.pth`` on disk is for, by its name, else its size; else ``body``."""
    path = Path(path)
    files = [(network, pinned_file(network)) for network in NETWORKS]
    by_name = [n for n, pinned in files if pinned.filename == path.name]
    size = path.stat().st_size if path.is_file() else -1
    by_size = [n for n, pinned in files if pinned.size == size]
    return (by_name or by_size or ["body"])[0]
BY_HAND = "bash model/get_cmu_model.sh --pth FILE"
TIMEOUT_S = 10.0  # for the server's first answer, per try
TRIES = 3


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


def file_url(hub: str, filename: str = FILENAME) -> str:
    """The pinned file's download address on the Hub ``hub``."""
    return f"{hub}/{REPO_ID}/resolve/{REVISION}/{filename}"


def _by_hand(hub: str, filename: str = FILENAME) -> str:
    return (
        f"to put it in place by hand, download {file_url(hub, filename)} where there is "
        f"internet, copy it here and run `{BY_HAND}`"
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


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def check_answers(url: str, timeout_s: float = TIMEOUT_S, tries: int = TRIES,
                  say: Callable[[str], None] = _say) -> None:
    """Return once the server of ``url`` answers a HEAD request (any answer: a redirect or an
    error status is the hub's to read); try ``tries`` times, ``timeout_s`` each, each retry said
    through ``say``; else ``FetchError`` saying what happened: a name that does not resolve, a
    refused connection, no connection, or a connection accepted and never answered."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    connection = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    where = parts.netloc
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    for attempt in range(1, tries + 1):
        conn = connection(parts.hostname, parts.port, timeout=timeout_s)
        try:
            try:
                conn.connect()
            except socket.gaierror:
                raise FetchError(f"cannot resolve the host name of {where}") from None
            except ConnectionRefusedError:
                reason = f"{where} refused the connection"
            except TimeoutError:
                reason = f"{where} did not accept a connection within {timeout_s:g} s"
            except OSError as e:
                reason = f"no connection to {where} ({e.strerror or e})"
            else:
                try:
                    conn.request("HEAD", path or "/")
                    conn.getresponse()
                    return
                except TimeoutError:
                    reason = (f"{where} accepted the connection but sent no answer within "
                              f"{timeout_s:g} s")
                except (OSError, http.client.HTTPException) as e:
                    reason = f"{where} closed the connection without an answer ({e})"
        finally:
            conn.close()
        if attempt < tries:
            say(f"warning: {reason}; trying again ({attempt + 1} of {tries})")
            time.sleep(min(2.0 ** (attempt - 1), 4.0))
    raise FetchError(f"{reason} ({tries} tries of {timeout_s:g} s)")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def download_pth(hub: str | None = None, cache_dir: str | Path | None = None,
                 timeout_s: float = TIMEOUT_S, say: Callable[[str], None] = _say,
                 filename: str = FILENAME, local_files_only: bool = False) -> Path:
    """``filename`` (default ``body_pose_model.pth``) at the pinned revision, from the Hugging
    Face cache or downloaded into it (``local_files_only``: from the cache only); ``FetchError``
    with one line naming what was tried when it cannot be had. ``timeout_s``: how long the
    server may take to answer, per try (``check_answers``)."""
    hub = endpoint(hub)
    tried = f"{filename} of {REPO_ID} at revision {REVISION} from {hub}"
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        from huggingface_hub.utils import LocalEntryNotFoundError
    except ImportError as e:
        raise FetchError(
            f"cannot download {tried}: huggingface_hub is not installed "
            f"(pip install huggingface_hub); {_by_hand(hub, filename)}"
        ) from e
    cached = try_to_load_from_cache(REPO_ID, filename, cache_dir=cache_dir, revision=REVISION)
    if isinstance(cached, str):
        return Path(cached)
    if local_files_only:
        raise FetchError(f"cannot get {tried}: not in the Hugging Face cache, and "
                         f"local_files_only is set; {_by_hand(hub, filename)}")
    # A proxy (which http.client would not use) or offline mode: the hub alone decides.
    host = urllib.parse.urlsplit(hub).hostname or ""
    if not _offline() and not (urllib.request.getproxies() and
                               not urllib.request.proxy_bypass(host)):
        try:
            check_answers(file_url(hub, filename), timeout_s, say=say)
        except FetchError as e:
            raise FetchError(f"cannot download {tried}: {e}; {_by_hand(hub, filename)}") from e
    try:
        with _quiet_hub():
            path = hf_hub_download(
                REPO_ID, filename, revision=REVISION, endpoint=hub, cache_dir=cache_dir,
                etag_timeout=timeout_s,
            )
    except LocalEntryNotFoundError as e:
        reason = "HF_HUB_OFFLINE is set" if _offline() else "no connection"
        raise FetchError(
            f"cannot download {tried}: {reason}, and no copy in the Hugging Face cache; "
            f"{_by_hand(hub, filename)}"
        ) from e
    # The hub raises its own errors, OSError and its HTTP client's errors (requests or httpx by
    # version): each is reported by its type and first line.
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise FetchError(
            f"cannot download {tried}: {type(e).__name__}: {reason}; {_by_hand(hub, filename)}"
        ) from e
    return Path(path)


def check_pth(path: str | Path, remedy: str, network: str = "body") -> Path:
    """``path`` if it is ``network``'s pinned file (``body_pose_model.pth`` by default; size,
    then sha256), else ``FetchError`` saying what differs, followed by ``remedy``."""
    pinned = pinned_file(network)
    path = Path(path)
    if not path.is_file():
        raise FetchError(f"{pinned.filename} not found: {path}")
    size = path.stat().st_size
    if size != pinned.size:
        raise FetchError(
            f"{path} has {size:,} bytes, {pinned.filename} has {pinned.size:,} "
            f"({'truncated' if size < pinned.size else 'another file'}); {remedy}"
        )
    digest = sha256(path)
    if digest != pinned.sha256:
        raise FetchError(
            f"{path} has sha256 {digest}, {pinned.filename} has {pinned.sha256}; {remedy}")
    return path


def download_checked(network: str = "body", hub: str | None = None,
                     cache_dir: str | Path | None = None, timeout_s: float = TIMEOUT_S,
                     local_files_only: bool = False) -> Path:
    """``network``'s pinned ``.pth`` (``download_pth``), checked by size and sha256
    (``check_pth``). A copy that fails the check is removed from the Hugging Face cache, link
    and blob (the hub would otherwise link its blob again), so that the next try downloads it."""
    path = download_pth(hub, cache_dir, timeout_s, filename=pinned_file(network).filename,
                        local_files_only=local_files_only)
    try:
        return check_pth(path, "removed it from the Hugging Face cache: run again to download "
                         "it again", network)
    except FetchError:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise


def fetch_network(network: str, target: Path, source: Path | None = None) -> Path:
    """Keras weights ``target`` of ``network`` (``body``, ``hand`` or ``face``) from its pinned
    ``.pth``: ``source`` if given, else downloaded through huggingface_hub (its progress bar),
    each checked by size and sha256."""
    from rtpose.convert.state_dict import convert_pth

    filename = pinned_file(network).filename
    if source is None:
        source = download_checked(network)
    else:
        check_pth(source, f"download {file_url(endpoint(), filename)} again", network)
    return convert_pth(source, target, network=network)


def fetch_cmu(target: Path, source: Path | None = None) -> Path:
    """The store's fetcher of the body network (``fetch_network``)."""
    return fetch_network("body", target, source)


def fetch_hand(target: Path, source: Path | None = None) -> Path:
    """The store's fetcher of the hand network (``fetch_network``)."""
    return fetch_network("hand", target, source)


def fetch_face(target: Path, source: Path | None = None) -> Path:
    """The store's fetcher of the face network (``fetch_network``)."""
    return fetch_network("face", target, source)
