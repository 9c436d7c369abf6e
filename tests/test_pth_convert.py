"""PyTorch ``.pth`` -> Keras without PyTorch, and the CMU model from its living source.

The ``.pth`` files are written from generated weights of the CMU shapes, in torch's zip and
legacy formats, by the tests' own writer (``weight_files``, no PyTorch) and, where PyTorch is
installed, by ``torch.save``. The same weights go through the ``.caffemodel`` and the Keras 2
``.h5`` routes; all must give the same Keras weights, bit for bit, and the same maps. The
download runs against a local stand-in for the Hugging Face Hub; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hub_server import running_hub
from weight_files import (
    TensorSpec,
    caffemodel_bytes,
    contiguous,
    cut_prototxt,
    random_layers,
    random_state,
    state_pickle,
    write_keras2_h5,
    write_pth,
)

from rtpose.convert import cmu_source
from rtpose.convert.caffe import convert_caffe_layers, dump_caffe_layers
from rtpose.convert.prototxt import read_prototxt
from rtpose.convert.pth import PthFormatError, read_pth
from rtpose.convert.state_dict import PthArchitectureError, convert_pth
from rtpose.models import load_model
from rtpose.models.cmu import build_cmu_model, conv_layers, load_cmu_weights
from rtpose.tools import get_cmu_model

RNG = np.random.default_rng(13)
ROUTES = ["pth-zip", "pth-legacy", "torch-zip", "torch-legacy", "caffemodel"]


def _state(layers) -> dict[str, np.ndarray]:
    """A state dict as body_pose_model.pth has it: ``<layer>.weight`` (out, in, kh, kw), bias."""
    return {
        f"{name}.{kind}": blob
        for name, _, blobs in layers
        if blobs
        for kind, blob in zip(("weight", "bias"), blobs, strict=True)
    }


def _torch_save(state: dict[str, np.ndarray], path: Path, legacy: bool) -> Path:
    torch = pytest.importorskip("torch")
    tensors = {name: torch.from_numpy(array) for name, array in state.items()}
    torch.save(tensors, path, _use_new_zipfile_serialization=not legacy)
    return path


def _run_tool(*args: str, env: dict | None = None, root: Path) -> subprocess.CompletedProcess:
    """``bash model/get_cmu_model.sh ARGS`` as a user runs it, offline, with an empty cache."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(root / "hub"),
        **(env or {}),
    }
    return subprocess.run(
        ["bash", "model/get_cmu_model.sh", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- the reader -----------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_read_both_formats_without_torch(tmp_path, legacy):
    weight = RNG.normal(size=(4, 3, 3, 3)).astype("float32")
    storages = {
        "w": weight.ravel(),
        "h": RNG.normal(size=6).astype("float16"),
        "i": np.arange(5, dtype="int64"),
    }
    tensors = {
        "conv.weight": TensorSpec("w", 0, (4, 3, 3, 3), (27, 9, 3, 1)),
        "transposed": TensorSpec("w", 0, (3, 4, 3, 3), (9, 27, 3, 1)),  # shares a storage
        "row": TensorSpec("w", 27 * 2 + 9, (3, 3), (3, 1)),  # at an offset
        "half": TensorSpec("h", 1, (2, 2), (1, 2)),
        "ints": TensorSpec("i", 0, (5,), (1,)),
    }
    path = write_pth(tmp_path / "m.pth", tensors, storages, legacy=legacy)
    state = read_pth(path, progress=False)
    assert list(state) == list(tensors)
    np.testing.assert_array_equal(state["conv.weight"], weight)
    np.testing.assert_array_equal(state["transposed"], weight.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(state["row"], weight[2, 1])
    np.testing.assert_array_equal(state["half"], storages["h"][1:5].reshape(2, 2, order="F"))
    np.testing.assert_array_equal(state["ints"], storages["i"])
    assert state["half"].dtype == np.float16 and state["ints"].dtype == np.int64


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_read_files_written_by_torch(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    weight = torch.randn(4, 5, 3, 3)
    state = {
        "a.weight": weight,
        "a.bias": torch.randn(4),
        "t": weight.transpose(0, 1),
        "slice": weight[1:3, ::2],
        "half": torch.randn(3, 2).half(),
        "bf16": torch.randn(7).bfloat16(),
        "long": torch.arange(4),
    }
    path = tmp_path / "m.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    read = read_pth(path, progress=False)
    assert list(read) == list(state)
    for name, tensor in state.items():
        expected = tensor.float().numpy() if name == "bf16" else tensor.numpy()
        assert read[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(read[name], expected, err_msg=name)


def test_code_in_a_pickle_is_refused_never_run(tmp_path):
    marker = tmp_path / "ran"
    evil = f"cos\nsystem\n(Vtouch {marker}\ntR.".encode()  # os.system("touch ...")
    for legacy in (False, True):
        path = write_pth(tmp_path / "evil.pth", {}, {}, legacy=legacy, data_pickle=evil)
        with pytest.raises(PthFormatError, match="refused to load os.system"):
            read_pth(path, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_and_foreign_files(tmp_path, legacy, shared_data):
    state = {"a.weight": RNG.normal(size=(8, 4, 3, 3)).astype("float32")}
    whole = write_pth(tmp_path / "whole.pth", *contiguous(state), legacy=legacy).read_bytes()
    for keep in (len(whole) - 100, len(whole) // 2, 40):
        (tmp_path / "cut.pth").write_bytes(whole[:keep])
        with pytest.raises(PthFormatError, match="truncated") as error:
            read_pth(tmp_path / "cut.pth", progress=False)
        assert "\n" not in str(error.value)
    tensors = {"a": TensorSpec("0", 0, (8,), (1,))}
    claims = state_pickle(tensors, {"0": np.zeros(8, "float32")}, legacy)
    short = write_pth(
        tmp_path / "short.pth", tensors, {"0": np.zeros(4, "float32")}, legacy, claims
    )
    expected = (
        "storage 0 has 4 elements, its reference says 8" if legacy else "storage 0 holds 16 bytes"
    )
    with pytest.raises(PthFormatError, match=expected):
        read_pth(short, progress=False)
    for path, expected in (
        (shared_data / "sample_images" / "ski.jpg", "not a PyTorch file"),
        (tmp_path / "absent.pth", ".pth file not found"),
    ):
        with pytest.raises(PthFormatError, match=expected):
            read_pth(path, progress=False)


# --- the same weights through every route ---------------------------------------------------------


@pytest.fixture(scope="module")
def two_stage(shared_data, tmp_path_factory):
    """The CMU prototxt cut after stage 2, random weights for it, and its Keras 2 .h5 route's
    model (the reference) with that model's maps on a test image."""
    root = tmp_path_factory.mktemp("routes")
    prototxt = cut_prototxt(
        shared_data / "caffe" / "_trained_COCO" / "pose_deploy.prototxt",
        2,
        root / "pose_deploy.prototxt",
    )
    layers = random_layers(read_prototxt(prototxt), RNG)
    keras2 = {
        name: (blobs[0].transpose(2, 3, 1, 0), blobs[1]) for name, _, blobs in layers if blobs
    }
    write_keras2_h5(root / "model.h5", keras2, full_model=True)
    reference = build_cmu_model(stages=2)
    load_cmu_weights(reference, root / "model.h5")
    image = RNG.uniform(0, 255, (1, 64, 48, 3)).astype("float32")
    return prototxt, layers, reference, [np.asarray(m) for m in reference(image)], image


def _convert(route: str, prototxt: Path, layers, root: Path) -> Path:
    output = root / "model.weights.h5"
    if route == "caffemodel":
        (root / "model.caffemodel").write_bytes(caffemodel_bytes(layers))
        dump_caffe_layers(prototxt, root / "model.caffemodel", root / "layers", progress=False)
        return convert_caffe_layers(root / "layers", output, stages=2, progress=False)
    legacy = route.endswith("legacy")
    if route.startswith("torch"):
        pth = _torch_save(_state(layers), root / "m.pth", legacy)
    else:
        pth = write_pth(root / "m.pth", *contiguous(_state(layers)), legacy=legacy)
    return convert_pth(pth, output, stages=2, progress=False)


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_gives_the_same_weights_and_maps(two_stage, tmp_path, route):
    prototxt, layers, reference, maps, image = two_stage
    model = build_cmu_model(stages=2)
    load_cmu_weights(model, _convert(route, prototxt, layers, tmp_path))
    for ours, theirs in zip(conv_layers(model), conv_layers(reference), strict=True):
        for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
            assert a.dtype == b.dtype == np.float32
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32), err_msg=ours.name)
    for ours, theirs in zip(model(image), maps, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), theirs)


def test_wrong_architectures_name_what_differs(two_stage, shared_data, tmp_path):
    _, layers, _, _, _ = two_stage
    pth = write_pth(tmp_path / "cmu2.pth", *contiguous(_state(layers)))
    out = tmp_path / "model.weights.h5"
    with pytest.raises(PthArchitectureError) as error:
        convert_pth(pth, out, stages=3, progress=False)
    message = str(error.value)
    assert "wrong architecture" in message and "28 of its 100 tensors missing" in message
    assert "Mconv1_stage3_L1.weight" in message and "\n" not in message
    state = {**_state(layers), "fc.weight": np.zeros((2, 2), "float32")}
    with pytest.raises(PthArchitectureError, match=r"1 extra \(fc.weight\)"):
        convert_pth(write_pth(tmp_path / "x.pth", *contiguous(state)), out, stages=2)
    # The MPI body model has the same layer names, other shapes.
    mpi = cut_prototxt(
        shared_data / "caffe" / "_trained_MPI" / "pose_deploy.prototxt",
        2,
        tmp_path / "mpi.prototxt",
    )
    mpi_pth = write_pth(
        tmp_path / "mpi.pth", *contiguous(_state(random_layers(read_prototxt(mpi), RNG)))
    )
    with pytest.raises(PthArchitectureError) as error:
        convert_pth(mpi_pth, out, stages=2, progress=False)
    assert "conv5_5_CPM_L1.weight is (28, 512, 1, 1), the model's (38, 512, 1, 1)" in str(
        error.value
    )
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


# --- the command ----------------------------------------------------------------------------------


def test_no_network_gives_one_line(tmp_path):
    line = _one_error_line(_run_tool(root=tmp_path))
    assert f"body_pose_model.pth of lllyasviel/Annotators at revision {cmu_source.REVISION}" in line
    assert "from https://huggingface.co: HF_HUB_OFFLINE is set" in line
    assert f"download {cmu_source.file_url('https://huggingface.co')}" in line
    assert "bash model/get_cmu_model.sh --pth FILE" in line
    mirror = _run_tool(root=tmp_path, env={"HF_ENDPOINT": "https://hub.example.org"})
    assert "from https://hub.example.org:" in _one_error_line(mirror)


def test_files_that_are_not_body_pose_model_pth(tmp_path):
    wrong_hash = tmp_path / "wrong_hash.pth"
    with open(wrong_hash, "wb") as file:
        file.truncate(cmu_source.SIZE)  # the right size, all zeros (sparse)
    zeros = hashlib.sha256()
    for start in range(0, cmu_source.SIZE, 1 << 24):
        zeros.update(bytes(min(1 << 24, cmu_source.SIZE - start)))
    line = _one_error_line(_run_tool("--pth", str(wrong_hash), root=tmp_path))
    assert f"{wrong_hash} has sha256 {zeros.hexdigest()}, body_pose_model.pth has " in line
    assert f"has {cmu_source.SHA256}; pass --no-verify" in line
    state = {"conv1_1.weight": RNG.normal(size=(64, 3, 3, 3)).astype("float32")}
    whole = write_pth(tmp_path / "small.pth", *contiguous(state)).read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[:-200])
    line = _one_error_line(_run_tool("--pth", str(tmp_path / "cut.pth"), root=tmp_path))
    assert f"bytes, body_pose_model.pth has {cmu_source.SIZE:,} (truncated)" in line
    line = _one_error_line(
        _run_tool("--pth", str(tmp_path / "cut.pth"), "--no-verify", root=tmp_path)
    )
    assert "truncated or not a PyTorch file" in line
    assert not (tmp_path / "model").exists()


def test_wrong_architecture_through_the_command(two_stage, tmp_path, capsys):
    _, layers, _, _, _ = two_stage
    pth = write_pth(tmp_path / "cmu2.pth", *contiguous(_state(layers)))
    with pytest.raises(SystemExit) as exit_info:
        get_cmu_model.main(["--pth", str(pth), "--no-verify", "--root", str(tmp_path)])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert "wrong architecture" in message and "112 of its 184 tensors missing" in message
    assert not (tmp_path / "model").exists()


def test_download_asks_for_the_pinned_file(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []
    small = write_pth(tmp_path / "small.pth", *contiguous({"a": np.zeros(3, "float32")}))

    def fake_download(repo_id, filename, **kw):
        calls.append((repo_id, filename, kw))
        return str(small)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(cmu_source, "check_answers", lambda url, *args, **kw: None)
    with pytest.raises(SystemExit) as exit_info:
        get_cmu_model.main(["--root", str(tmp_path), "--endpoint", "https://mirror.example/"])
    [(repo_id, filename, kw)] = calls
    assert (repo_id, filename) == ("lllyasviel/Annotators", "body_pose_model.pth")
    assert kw["revision"] == "982e7edaec38759d914a963c48c4726685de7d96"
    assert kw["endpoint"] == "https://mirror.example"
    assert "removed it from the Hugging Face cache" in str(exit_info.value.code)
    assert not small.exists()  # a copy that is not the pinned file does not stay in the cache


@pytest.fixture
def local_hub():
    with running_hub() as (hub, _):
        yield hub


@pytest.mark.slow
def test_from_the_hub_to_the_demo_default(shared_data, tmp_path, local_hub, monkeypatch):
    """The whole CMU model (6 stages, 209 MB) downloaded through huggingface_hub, checked,
    converted, then found with no flag as the scripts find it; a second download uses the
    cache."""
    hub = local_hub
    net = read_prototxt(shared_data / "caffe" / "_trained_COCO" / "pose_deploy.prototxt")
    state = random_state(net, RNG)
    pth = write_pth(tmp_path / "body_pose_model.pth", *contiguous(state))
    hub.serve(cmu_source.REPO_ID, cmu_source.REVISION, pth)
    body = pth.read_bytes()
    monkeypatch.setattr(cmu_source, "SIZE", len(body))
    monkeypatch.setattr(cmu_source, "SHA256", hashlib.sha256(body).hexdigest())
    argv = ["--root", str(tmp_path), "--endpoint", hub.url, "--cache-dir", str(tmp_path / "hub")]
    get_cmu_model.main(argv)
    assert [m for m, _ in hub.requests] == ["HEAD", "HEAD", "GET"]  # rtpose's, then the hub's
    model, architecture = load_model(repo_root=tmp_path)  # what demo_image.py does with no flag
    assert architecture.name == "cmu" and len(conv_layers(model)) == 92
    for layer in conv_layers(model):
        kernel, bias = layer.get_weights()
        np.testing.assert_array_equal(kernel, state[f"{layer.name}.weight"].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(bias, state[f"{layer.name}.bias"])
    cached = cmu_source.download_pth(hub.url, tmp_path / "hub")
    assert len(hub.requests) == 3  # the pinned revision now comes from the cache
    assert cached.read_bytes() == body


def test_help_and_flag_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        get_cmu_model.main(["--help"])
    assert exit_info.value.code == 0 and "--pth" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        get_cmu_model.main(["--no-verify"])
    assert exit_info.value.code == 2


# --- the caffemodel's mirrors -----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="the script's file:// sources need curl")
def test_caffemodel_sources_are_tried_in_order_and_checked(repo_root, tmp_path):
    """A copy of the script, every network address routed to a closed local port: a wrong file
    from CAFFEMODEL_URL is refused, every source is tried, nothing is kept."""
    (tmp_path / "model").mkdir()
    for name in ("fetch.sh", "get_caffe_model.sh"):
        shutil.copy(repo_root / "model" / name, tmp_path / "model" / name)
    (tmp_path / "wrong.caffemodel").write_bytes(b"not the model")
    closed = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "http_proxy": closed,
        "https_proxy": closed,
        "HTTPS_PROXY": closed,
        "ALL_PROXY": closed,
        "no_proxy": "",
        "NO_PROXY": "",
        "CAFFEMODEL_URL": f"file://{tmp_path}/wrong.caffemodel file://{tmp_path}/absent",
    }
    result = subprocess.run(
        ["bash", str(tmp_path / "model" / "get_caffe_model.sh")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1
    tried = [line.removeprefix("downloading ") for line in result.stdout.splitlines()]
    assert tried[:2] == [f"file://{tmp_path}/wrong.caffemodel", f"file://{tmp_path}/absent"]
    assert tried[2].startswith("http://posefs1.perception.cs.cmu.edu/") and len(tried) == 4
    assert "has 13 bytes, expected 209274056" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: none of the 4 sources")
    assert not list((tmp_path / "model" / "_trained_COCO").iterdir())
