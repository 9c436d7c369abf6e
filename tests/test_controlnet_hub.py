"""``rtpose.controlnet.OpenposeDetector.from_pretrained`` from the Hugging Face Hub, offline: the
three ``.pth`` files (random weights in the real names and shapes, no torch) served by a local
stand-in for the Hub (``hub_server``) at ``HF_ENDPOINT`` and pinned in ``cmu_source`` by their
size and sha256. The pinned revision is asked for, the files are checked, a file that fails is
refused and leaves the cache, the detector finds what the local folder's does, and a second
call, ``local_files_only`` with no server, and another repository all use the caches."""

from __future__ import annotations

import filecmp
from dataclasses import replace

import cv2
import numpy as np
import pytest

hf_constants = pytest.importorskip(
    "huggingface_hub.constants",
    reason="from_pretrained's downloads need huggingface_hub (pip install huggingface_hub)")
from hub_server import running_hub  # noqa: E402
from test_wholebody import _random_state  # noqa: E402
from weight_files import contiguous, random_state, write_pth  # noqa: E402

from rtpose import controlnet  # noqa: E402
from rtpose.convert import cmu_source, state_dict  # noqa: E402
from rtpose.convert.prototxt import read_prototxt  # noqa: E402
from rtpose.errors import RtposeError  # noqa: E402

REPO = cmu_source.REPO_ID
OTHER_REPO = "someone/openpose"
NETWORKS = ("body", "hand", "face")


def _point_huggingface_hub_at(url: str, patch: pytest.MonkeyPatch) -> None:
    """What ``HF_ENDPOINT=url`` sets when huggingface_hub is imported."""
    patch.setattr(hf_constants, "ENDPOINT", url)
    patch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                  url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture(scope="module")
def pth(shared_data, tmp_path_factory):
    """The three files of lllyasviel/Annotators in a folder, {network: path}."""
    folder = tmp_path_factory.mktemp("annotators")
    net = read_prototxt(shared_data / "caffe" / "_trained_COCO" / "pose_deploy.prototxt")
    states = {"body": random_state(net, np.random.default_rng(3)),
              "hand": _random_state("hand"), "face": _random_state("face")}
    return {network: write_pth(folder / cmu_source.pinned_file(network).filename,
                               *contiguous(states[network]))
            for network in NETWORKS}


@pytest.fixture(scope="module")
def hub(pth):
    """The local Hub serving the files at the pinned revision of lllyasviel/Annotators and at
    ``main`` of another repository; huggingface_hub pointed at it, as ``HF_ENDPOINT`` does (read
    at its import), the pinned sizes and sha256 those of the files."""
    with running_hub() as (local, _), pytest.MonkeyPatch.context() as patch:
        pinned = {}
        for network, path in pth.items():
            digest = local.serve(REPO, cmu_source.REVISION, path)
            local.serve(OTHER_REPO, "main", path)
            pinned[network] = cmu_source.PinnedFile(path.name, path.stat().st_size, digest)
        _point_huggingface_hub_at(local.url, patch)
        patch.delenv("HF_HUB_OFFLINE", raising=False)
        patch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        patch.setattr(cmu_source, "SIZE", pinned["body"].size)
        patch.setattr(cmu_source, "SHA256", pinned["body"].sha256)
        patch.setattr(cmu_source, "_PART_FILES", {n: pinned[n] for n in ("hand", "face")})
        yield local


@pytest.fixture
def conversions(monkeypatch):
    """The ``.pth`` files converted from here on."""
    converted = []
    convert = state_dict.convert_pth

    def counting(pth, *args, **kwargs):
        converted.append(pth)
        return convert(pth, *args, **kwargs)

    monkeypatch.setattr(state_dict, "convert_pth", counting)
    return converted


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("caches")
    return {"cache_dir": root / "hf", "weights_dir": root / "rtpose"}


@pytest.fixture(scope="module")
def from_hub(hub, caches):
    """The detector of the first call, and the files' requests it made: (method, path)."""
    detector = controlnet.OpenposeDetector.from_pretrained(REPO, runtime="keras", **caches)
    return detector, hub.file_requests()


@pytest.fixture(scope="module")
def ski(shared_data):
    image = cv2.imread(str(shared_data / "sample_images" / "ski.jpg"))[:, :, ::-1]
    return controlnet.resize_image(np.ascontiguousarray(image), 512)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert isinstance(error.value, RtposeError) and message and "\n" not in message, message
    return message


def test_the_pinned_revision_is_downloaded_and_converted_once(from_hub, caches):
    _, requests = from_hub
    pinned = [f"/{REPO}/resolve/{cmu_source.REVISION}/{cmu_source.pinned_file(n).filename}"
              for n in NETWORKS]
    assert [path for method, path in requests if method == "GET"] == pinned
    assert {path for _, path in requests} == set(pinned)  # the HEADs too: the pinned revision
    converted = sorted(p.name.split("-")[0] for p in caches["weights_dir"].iterdir())
    assert converted == ["body", "face", "hand"]


def test_the_same_poses_as_from_the_local_folder(from_hub, pth, ski, tmp_path):
    detector, _ = from_hub
    local = controlnet.OpenposeDetector.from_pretrained(
        pth["body"].parent, runtime="keras", weights_dir=tmp_path)
    poses = detector.detect_poses(ski)
    assert len(poses) >= 3, "the random weights find too few people to prove anything"
    assert poses == local.detect_poses(ski)
    batch = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    for name in ("hand_estimation", "face_estimation"):
        maps = getattr(detector, name)(batch)
        assert np.abs(maps).max() > 1e-3
        np.testing.assert_array_equal(maps, getattr(local, name)(batch), err_msg=name)


def test_a_second_call_uses_the_caches(from_hub, hub, caches, conversions):
    before = len(hub.file_requests())
    controlnet.OpenposeDetector.from_pretrained(REPO, runtime="keras", **caches)
    assert hub.file_requests()[before:] == [] and conversions == []


def test_local_files_only_with_no_server(from_hub, caches, conversions, monkeypatch, tmp_path):
    with running_hub() as (stopped, stop):
        stop()
    _point_huggingface_hub_at(stopped.url, monkeypatch)
    controlnet.OpenposeDetector.from_pretrained(REPO, runtime="keras", local_files_only=True,
                                                **caches)
    assert conversions == []
    with pytest.raises(RtposeError) as error:
        controlnet.OpenposeDetector.from_pretrained(REPO, local_files_only=True,
                                                    cache_dir=tmp_path / "empty")
    assert "not in the Hugging Face cache, and local_files_only is set" in _one_line(error)
    assert not list(tmp_path.glob("empty/**/*.pth"))


def test_a_wrong_file_is_one_line_and_leaves_the_cache(hub, monkeypatch, tmp_path,
                                                                  conversions):
    real = cmu_source.pinned_file("hand")
    monkeypatch.setitem(cmu_source._PART_FILES, "hand", replace(real, sha256="0" * 64))
    with pytest.raises(RtposeError) as error:
        controlnet.OpenposeDetector.from_pretrained(REPO, cache_dir=tmp_path / "hf",
                                                    weights_dir=tmp_path / "rtpose")
    message = _one_line(error)
    assert f"has sha256 {real.sha256}, hand_pose_model.pth has {'0' * 64}; " in message
    assert message.endswith("removed it from the Hugging Face cache: run again to download it "
                            "again")
    assert conversions == [] and not (tmp_path / "rtpose").exists()
    kept = sorted(p.name for p in (tmp_path / "hf").rglob("*.pth"))
    blobs = [p for p in (tmp_path / "hf").rglob("blobs/*") if p.is_file()]
    assert kept == ["body_pose_model.pth"] and len(blobs) == 1  # checked, kept for next time
    before = len(hub.file_requests())
    monkeypatch.setattr(cmu_source, "SIZE", cmu_source.SIZE + 1)
    with pytest.raises(RtposeError) as error:
        controlnet.OpenposeDetector.from_pretrained(REPO, cache_dir=tmp_path / "hf",
                                                    weights_dir=tmp_path / "rtpose")
    assert f"bytes, body_pose_model.pth has {cmu_source.SIZE:,} (truncated); " in \
        _one_line(error)
    assert hub.file_requests()[before:] == []  # the cached copy was checked, and is gone
    assert not [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and "blobs" in p.parts]
    assert conversions == []


def test_another_repository_at_its_default_revision(hub, pth, tmp_path, monkeypatch):
    """What from_pretrained downloads for a repository other than lllyasviel/Annotators (then
    converted as the pinned files are, above): its files through hf_hub_download at ``main``,
    not pinned, and then from the cache with no server."""
    before = len(hub.file_requests("GET"))
    got = {network: controlnet._download(OTHER_REPO, path.name, network, tmp_path, False)
           for network, path in pth.items()}
    assert hub.file_requests("GET")[before:] == [f"/{OTHER_REPO}/resolve/main/{path.name}"
                                                 for path in pth.values()]
    commit = hub.files[f"/{OTHER_REPO}/resolve/main/body_pose_model.pth"].commit
    for network, path in got.items():
        assert path.parent.name == commit and filecmp.cmp(path, pth[network], shallow=False)
    with running_hub() as (stopped, stop):
        stop()
    _point_huggingface_hub_at(stopped.url, monkeypatch)
    assert controlnet._download(OTHER_REPO, "facenet.pth", "face", tmp_path, True) == got["face"]
    with pytest.raises(RtposeError) as error:
        controlnet._download(OTHER_REPO, "facenet.pth", "face", tmp_path / "empty", True)
    assert _one_line(error).startswith(
        "cannot get facenet.pth of someone/openpose from the Hugging Face cache (local_files_only)")


def test_what_cannot_be_had_is_one_line(hub, tmp_path):
    with pytest.raises(RtposeError) as error:
        controlnet.OpenposeDetector.from_pretrained("someone/absent", cache_dir=tmp_path)
    message = _one_line(error)
    assert message.startswith(f"cannot get body_pose_model.pth of someone/absent from {hub.url}: "
                              "RepositoryNotFoundError: 404 Client Error.")
    assert "Repository Not Found for url: " in message
    with pytest.raises(RtposeError) as error:
        controlnet.OpenposeDetector.from_pretrained(OTHER_REPO, filename="body.pth",
                                                    cache_dir=tmp_path)
    message = _one_line(error)
    assert message.startswith(f"cannot get body.pth of {OTHER_REPO} from {hub.url}: ")
    assert "EntryNotFoundError: 404 Client Error." in message
    assert f"Entry Not Found for url: {hub.url}/{OTHER_REPO}/resolve/main/body.pth" in message
    with pytest.raises(RtposeError) as error:
        controlnet.OpenposeDetector.from_pretrained(tmp_path / "no" / "such" / "folder")
    assert "no such folder" in _one_line(error)
