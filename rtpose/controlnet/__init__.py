"""A drop-in for controlnet_aux's ``OpenposeDetector``: ControlNet "openpose" conditioning images
(and the web UIs' pose JSON) from rtpose's runtimes, with controlnet_aux's results.

    detector = OpenposeDetector.from_pretrained("lllyasviel/Annotators")  # or a local folder
    pose = detector(image, detect_resolution=512, image_resolution=512, include_body=True,
                    include_hand=False, include_face=False, output_type="pil")
    poses = detector.detect_poses(rgb)          # [PoseResult], coordinates normalised to 0..1
    data = encode_poses_as_dict(poses, height, width)       # the web UIs' pose JSON
    canvas = draw_pose_dict(data)               # ... and back to a picture, after editing

What controlnet_aux does, step for step (so that its pixels come out):

- the input (PIL or RGB array; gray and RGBA become RGB) is resized so that its short side is
  ``detect_resolution``, both sides rounded to multiples of 64 (``resize_image``: Lanczos up,
  area down), and turned to BGR;
- body: one scale, 0.5 x 368 / H (heatmaps clipped at 0, as controlnet_aux's model does);
  the image resized (area down, Lanczos up), padded right and
  down with 128 to multiples of 8, the maps up-sampled x8 and to the image (Lanczos; area when
  shrinking), then the original's peaks and grouping (``rtpose.decode.faithful``); or, with
  ``decoder="fast"``, rtpose's decoder on the low-resolution maps (no map resized);
- hands and face: ``rtpose.wholebody``;
- drawing on black (``draw_poses``): the 17 limbs as filled ellipses 4 px wide in the 18
  colours at 0.6, joints as circles of radius 4, hand edges 2 px in 20 hues with blue
  points, white face dots of radius 3; the canvas then resized (bilinear) to the input resized
  to ``image_resolution``.

Processors (``PROCESSORS``) name controlnet_aux's ``include_*`` settings. The hand and face
keypoints are float32 and a coordinate at the crop's left or top edge becomes -1 / W, as
controlnet_aux's are; the face list holds the parts found, the face network's background
map's peak included. The CMU weights are for non-commercial use only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtpose.config import CMU_GROUPING
from rtpose.controlnet.poses import (
    BodyResult,
    Keypoint,
    PoseResult,
    decode_pose_dict,
    draw_bodypose,
    draw_facepose,
    draw_handpose,
    draw_pose_dict,
    draw_poses,
    encode_poses_as_dict,
)
from rtpose.decode import DECODERS, decode
from rtpose.decode.faithful import people_from_maps
from rtpose.errors import RtposeError
from rtpose.geometry import Geometry
from rtpose.people import People
from rtpose.runtime.network import Network
from rtpose.wholebody import (
    BOXSIZE,
    STRIDE,
    HandsFace,
    detect_hands_face,
    resize,
    upsample_by_stride,
)
from rtpose.wholebody import (
    Network as HeatmapNetwork,
)

__all__ = [
    "PROCESSORS", "BodyResult", "Keypoint", "OpenposeDetector", "PoseResult", "decode_pose_dict",
    "draw_bodypose", "draw_facepose", "draw_handpose", "draw_pose_dict", "draw_poses",
    "encode_poses_as_dict", "hwc3", "resize_image",
]

PROCESSORS = {
    "openpose": {"include_body": True, "include_hand": False, "include_face": False},
    "openpose_face": {"include_body": True, "include_hand": False, "include_face": True},
    "openpose_faceonly": {"include_body": False, "include_hand": False, "include_face": True},
    "openpose_full": {"include_body": True, "include_hand": True, "include_face": True},
    "openpose_hand": {"include_body": False, "include_hand": True, "include_face": False},
}
BODY_SCALE = 0.5
PAD_VALUE = 128
PTH_FILES = {"body": "body_pose_model.pth", "hand": "hand_pose_model.pth", "face": "facenet.pth"}



# --- images -------------------------------------------------------------------------------------

def hwc3(image: np.ndarray) -> np.ndarray:
    """A uint8 image as (H, W, 3): gray repeated, RGBA blended onto white."""
    if image.dtype != np.uint8:
        raise RtposeError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise RtposeError(f"expected an image of 1, 3 or 4 channels, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.concatenate([image] * 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        blended = image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return blended.clip(0, 255).astype(np.uint8)
    return image


def resize_image(image: np.ndarray, resolution: int) -> np.ndarray:
    """The short side to ``resolution``, both sides rounded to multiples of 64 (Lanczos when
    enlarging, area when shrinking)."""
    height, width = float(image.shape[0]), float(image.shape[1])
    k = float(resolution) / min(height, width)
    size = (int(np.round(width * k / 64.0)) * 64, int(np.round(height * k / 64.0)) * 64)
    return cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA)


def _resize_by(image: np.ndarray, factor: float) -> np.ndarray:
    """controlnet_aux's ``smart_resize_k`` with fx = fy = ``factor``."""
    height, width = image.shape[:2]
    size = (int(width * factor), int(height * factor))
    shrink = (height * factor + width * factor) / (height + width) < 1
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4
    return cv2.resize(image, size, interpolation=interpolation)


# --- detection ----------------------------------------------------------------------------------

def body_outputs(image: np.ndarray, network: Network
                 ) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """The network's heatmaps (h, w, 19) and PAFs (h, w, 38) at stride 8 for a BGR image at
    controlnet_aux's one scale and resizing rules, and where they sit in the image."""
    height, width = image.shape[:2]
    resized = _resize_by(image, BODY_SCALE * BOXSIZE / height)
    h, w = resized.shape[:2]
    padded = np.full((-(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE, 3), PAD_VALUE, np.uint8)
    padded[:h, :w] = resized
    heat, paf = network(padded[np.newaxis].astype(np.float32))
    # controlnet_aux's body model has a ReLU after its last heatmap layer (Mconv7_stage6_L2 is
    # missing from its list of layers without one): its heatmaps are never negative.
    pads = ((padded.shape[0] - h, padded.shape[1] - w),)
    return np.maximum(heat[0], 0), paf[0], Geometry((height, width), pads, STRIDE)


def body_maps(image: np.ndarray, network: Network) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (H, W, 19) and PAFs (H, W, 38), float32, of a BGR image at controlnet_aux's one
    scale and resizing rules. (controlnet_aux holds them as float64: the same values, and the
    decoder computes in float64 from them.)"""
    height, width = image.shape[:2]
    heat, paf, geometry = body_outputs(image, network)
    (pad_down, pad_right), = geometry.pads
    h, w = heat.shape[0] * STRIDE - pad_down, heat.shape[1] * STRIDE - pad_right
    maps = []
    for out in (heat, paf):
        up = upsample_by_stride(np.asarray(out, np.float32))[:h, :w]
        maps.append(resize(up, (width, height)))
    return maps[0], maps[1]


def _normalised(values: np.ndarray, corner: int, size: int) -> np.ndarray:
    """controlnet_aux's float32 hand and face coordinates: ``values`` relative to the crop,
    -1 at its left or top edge (or for a part not found), divided by the image's side."""
    relative = np.float32(values) - np.float32(corner)
    return np.where(relative < 1e-6, -1, relative + corner).astype(np.float32) / float(size)


def pose_results(people: People, found: HandsFace | None, image_hw: tuple[int, int]
                 ) -> list[PoseResult]:
    """controlnet_aux's ``detect_poses`` result from rtpose's people and their hands and face."""
    height, width = image_hw
    results = []
    hands_of = {}
    faces_of = {}
    if found is not None and found.hands is not None:
        for person, side, x, y, _ in found.hand_boxes:
            hand = found.hands[person, side]
            found_xy = hand[:, 2] != 0
            xs = _normalised(np.where(found_xy, hand[:, 0], x), x, width)
            ys = _normalised(np.where(found_xy, hand[:, 1], y), y, height)
            hands_of[person, side] = [Keypoint(px, py) for px, py in zip(xs, ys, strict=True)]
    if found is not None and found.face is not None:
        for person, x, y, _ in found.face_boxes:
            face = np.concatenate([found.face[person], found.face_background[person][None]])
            face = face[face[:, 2] > 0]
            xs, ys = _normalised(face[:, 0], x, width), _normalised(face[:, 1], y, height)
            faces_of[person] = [Keypoint(px, py) for px, py in zip(xs, ys, strict=True)] or None
    for person, keypoints in enumerate(people.keypoints):
        body = [Keypoint(x / float(width), y / float(height)) if score > 0 else None
                for x, y, score in keypoints.tolist()]
        results.append(PoseResult(
            BodyResult(body, float(people.scores[person]), int(people.part_counts[person])),
            hands_of.get((person, 0)), hands_of.get((person, 1)), faces_of.get(person)))
    return results


class OpenposeDetector:
    """controlnet_aux's ``OpenposeDetector`` on rtpose's runtimes.

    ``body``: a ``rtpose.runtime.Network`` (the CMU body model, or any network of the same
    maps); ``hand`` and ``face``: ``rtpose.runtime.part_runtime.HeatmapNetwork`` (or None).
    ``decoder``: ``faithful`` (default), controlnet_aux's steps on maps resized to the image
    as it resizes them, for its keypoints; or ``fast``, rtpose's decoder on the network's
    low-resolution maps (``rtpose.decode``: no map resized; the peaks as the original's
    bicubic resizing would place them, a pixel or two from controlnet_aux's).
    """

    def __init__(self, body: Network, hand: HeatmapNetwork | None = None,
                 face: HeatmapNetwork | None = None, decoder: str = "faithful"):
        if decoder not in DECODERS:
            raise RtposeError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        self.body_estimation, self.hand_estimation, self.face_estimation = body, hand, face
        self.decoder = decoder

    @classmethod
    def from_pretrained(cls, pretrained_model_or_path: str | os.PathLike = "lllyasviel/Annotators",
                        filename: str | None = None, hand_filename: str | None = None,
                        face_filename: str | None = None, cache_dir: str | Path | None = None,
                        local_files_only: bool = False, runtime: str = "openvino",
                        precision: str = "fp32", weights_dir: str | Path | None = None,
                        calibration: str | Path | None = None, decoder: str = "faithful"
                        ) -> OpenposeDetector:
        """From the ``.pth`` files of a Hugging Face repository (downloaded through
        huggingface_hub into its cache, ``cache_dir``; ``lllyasviel/Annotators``'s at the
        pinned revision, checked by size and sha256, another's at its default revision;
        ``local_files_only``: from the cache alone) or of a local folder, converted once to
        Keras weights in ``weights_dir`` (default ``$RTPOSE_CACHE`` or ``~/.cache/rtpose``, by
        the file's size and mtime), where the OpenVINO IR is cached too. ``runtime``:
        ``openvino`` (default) or ``keras``; ``precision``: ``fp32``, ``bf16`` or ``int8``
        (calibrated once on ``calibration``, a folder of COCO training images with their
        keypoint annotations beside it: ``rtpose.runtime.calibration``); ``decoder``: as the
        class's."""
        names = {"body": filename, "hand": hand_filename, "face": face_filename}
        names = {key: value or PTH_FILES[key] for key, value in names.items()}
        folder = Path(pretrained_model_or_path)
        if folder.is_dir():
            paths = {key: folder / name for key, name in names.items()}
        else:
            paths = {key: _download(str(pretrained_model_or_path), name, key, cache_dir,
                                    local_files_only) for key, name in names.items()}
        weights = {key: _converted(path, key, weights_dir) for key, path in paths.items()}
        from rtpose.models import load_model
        from rtpose.runtime import make_network
        from rtpose.runtime.part_runtime import part_network

        network = None
        if runtime == "openvino":
            from rtpose.runtime.openvino.cache import cached_openvino_network

            network = cached_openvino_network(weights["body"], precision)
        if network is None:
            model, arch = load_model("cmu", weights["body"])
            network = make_network(model, arch, runtime, weights["body"], precision=precision,
                                   calibration=calibration)
        hand, face = (part_network(name, weights[name], runtime, precision,
                                   calibration=calibration) for name in ("hand", "face"))
        return cls(network, hand, face, decoder)

    def detect(self, image: np.ndarray, include_hand: bool = False, include_face: bool = False
               ) -> tuple[People, HandsFace | None]:
        """rtpose's people (pixels) and their hands and face in a BGR uint8 image."""
        if self.decoder == "faithful":
            heat, paf = body_maps(image, self.body_estimation)
            _, people = people_from_maps(heat, paf, CMU_GROUPING)
        else:
            heat, paf, geometry = body_outputs(image, self.body_estimation)
            _, people = decode([(heat, paf)], geometry, CMU_GROUPING, "fast")
        if not (include_hand or include_face):
            return people, None
        for flag, network, name in ((include_hand, self.hand_estimation, "hand"),
                                    (include_face, self.face_estimation, "face")):
            if flag and network is None:
                raise RtposeError(f"this detector has no {name} network")
        found = detect_hands_face(image, people.keypoints,
                                  self.hand_estimation if include_hand else None,
                                  self.face_estimation if include_face else None)
        return people, found

    def detect_poses(self, image: np.ndarray, include_hand: bool = False,
                     include_face: bool = False) -> list[PoseResult]:
        """controlnet_aux's ``detect_poses``: an RGB uint8 image in, normalised poses out."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        people, found = self.detect(bgr, include_hand, include_face)
        return pose_results(people, found, bgr.shape[:2])

    def __call__(self, input_image: Any, detect_resolution: int = 512,
                 image_resolution: int = 512, include_body: bool = True,
                 include_hand: bool = False, include_face: bool = False,
                 hand_and_face: bool | None = None, output_type: str = "pil",
                 **kwargs: Any) -> Any:
        """The conditioning image (PIL, or ``output_type="np"`` an RGB array) of an image."""
        if hand_and_face is not None:
            include_hand = include_face = hand_and_face
        if "return_pil" in kwargs:
            output_type = "pil" if kwargs["return_pil"] else "np"
        canvas, _, _ = self.run(input_image, detect_resolution, image_resolution, include_body,
                                include_hand, include_face)
        if output_type == "pil":
            from PIL import Image

            return Image.fromarray(canvas)
        return canvas

    def run(self, input_image: Any, detect_resolution: int = 512, image_resolution: int = 512,
            include_body: bool = True, include_hand: bool = False, include_face: bool = False
            ) -> tuple[np.ndarray, list[PoseResult], tuple[int, int]]:
        """``__call__``'s picture (RGB array), with the poses and the (H, W) of the canvas they
        were drawn on (the input at ``detect_resolution``), e.g. for ``encode_poses_as_dict``."""
        image = hwc3(np.asarray(input_image, dtype=np.uint8))
        image = resize_image(image, detect_resolution)
        height, width = image.shape[:2]
        poses = self.detect_poses(image, include_hand, include_face)
        canvas = draw_poses(poses, height, width, include_body, include_hand, include_face)
        target = resize_image(image, image_resolution)
        canvas = cv2.resize(canvas, (target.shape[1], target.shape[0]),
                            interpolation=cv2.INTER_LINEAR)
        return canvas, poses, (height, width)


def _download(repo: str, filename: str, network: str, cache_dir: Any,
              local_files_only: bool) -> Path:
    """A ``.pth`` of a Hugging Face repository through huggingface_hub (its cache,
    ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, tokens): the pinned files of ``lllyasviel/Annotators``
    at the pinned revision, checked by size and sha256 (``cmu_source.download_checked``);
    another repository's at its default revision."""
    from rtpose.convert import cmu_source

    if repo.startswith(("/", ".", "~")) or repo.count("/") > 1:
        raise RtposeError(f"{repo}: no such folder (nor a Hugging Face repository, owner/name)")
    if repo == cmu_source.REPO_ID and filename == cmu_source.pinned_file(network).filename:
        return cmu_source.download_checked(network, cache_dir=cache_dir,
                                           local_files_only=local_files_only)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise RtposeError("from_pretrained needs huggingface_hub: pip install huggingface_hub")\
            from e
    revision = cmu_source.REVISION if repo == cmu_source.REPO_ID else None
    hub = cmu_source.endpoint()
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir,
                                    endpoint=hub, local_files_only=local_files_only))
    except Exception as e:  # the hub's own errors, OSError, its HTTP client's
        where = "the Hugging Face cache (local_files_only)" if local_files_only else hub
        # The hub's messages start "404 Client Error." then say what was not found.
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise RtposeError(f"cannot get {filename} of {repo} from {where}: "
                          f"{type(e).__name__}: {' '.join(lines[:2])}") from e


def _converted(pth: Path, network: str, weights_dir: str | Path | None) -> Path:
    """The Keras weights of ``pth``, converted on first use."""
    from rtpose.convert.state_dict import convert_pth

    if not pth.is_file():
        raise RtposeError(f"{pth} not found")
    folder = Path(weights_dir or os.environ.get("RTPOSE_CACHE")
                  or Path.home() / ".cache" / "rtpose")
    stat = pth.stat()
    output = folder / f"{network}-{stat.st_size}-{stat.st_mtime_ns}.weights.h5"
    if not output.is_file():
        convert_pth(pth, output, network=network, progress=False)
    return output
