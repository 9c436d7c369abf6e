"""controlnet_aux's open_pose (0.0.10), imported without its package ``__init__`` (which imports
every annotator), as the oracle of ``rtpose.controlnet``; and random CMU weights for both.

Needs torch, controlnet-aux (``pip install --no-deps controlnet-aux==0.0.10``), scikit-image and
matplotlib; without torchvision, ``face.py``'s two torchvision names get stand-ins (unused by
detection).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path


def load_open_pose() -> types.ModuleType:
    """``controlnet_aux.open_pose``, its package's ``__init__`` skipped."""
    if "controlnet_aux.open_pose" in sys.modules:
        return sys.modules["controlnet_aux.open_pose"]
    spec = importlib.util.find_spec("controlnet_aux")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("controlnet_aux is not installed")
    package = types.ModuleType("controlnet_aux")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["controlnet_aux"] = package
    if importlib.util.find_spec("torchvision") is None:
        transforms = types.ModuleType("torchvision.transforms")
        transforms.ToPILImage = transforms.ToTensor = lambda *a, **k: None
        vision = types.ModuleType("torchvision")
        vision.transforms = transforms
        sys.modules.update({"torchvision": vision, "torchvision.transforms": transforms})
    return importlib.import_module("controlnet_aux.open_pose")


def random_pth(folder: Path, seed: int = 0, gain: float = 20.0) -> dict[str, Path]:
    """``body_pose_model.pth``, ``hand_pose_model.pth`` and ``facenet.pth`` in ``folder``: random
    weights in the real files' key names (Caffe layer names) and shapes, saved by torch. torch's
    initialisation, the last layer's kernels times ``gain`` so that the maps reach the
    thresholds (peaks, limbs, hands and faces are found)."""
    import torch

    open_pose = load_open_pose()
    model = importlib.import_module("controlnet_aux.open_pose.model")
    face = importlib.import_module("controlnet_aux.open_pose.face")
    torch.manual_seed(seed)
    paths = {}
    for name, net, prefixed in (("body_pose_model.pth", model.bodypose_model(), True),
                                ("hand_pose_model.pth", model.handpose_model(), True),
                                ("facenet.pth", face.FaceNet(), False)):
        state = {}
        for key, value in net.state_dict().items():
            key = key.split(".", 1)[1] if prefixed else key
            last = key.startswith("Mconv7_stage6") and key.endswith("weight")
            state[key] = (value * gain if last else value if key.endswith("weight") else
                          torch.empty_like(value).uniform_(-0.05, 0.05))
        paths[name] = folder / name
        torch.save(state, paths[name])
    del open_pose
    return paths
