"""Faults, round 2, of the OpenVINO cache: a damaged IR (100 KB of its .bin overwritten, same
size, same mtime) found 7 people on ski.jpg, or 0, without a word; it is now checked against the
SHA-256 kept beside it and converted again. A cache that cannot be replaced (immutable files, a
folder in its place) falls back to a temporary copy with one warning line."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from rtpose.models import ARCHITECTURES, load_model
from rtpose.runtime.openvino import cache as ovn

ARCH = ARCHITECTURES["mobilenet_thin"]
BATCH = np.random.default_rng(5).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def converted(mobilenet_weights, tmp_path_factory):
    """A weights file with its IR cached beside it, and the IR's maps on ``BATCH``."""
    pytest.importorskip("openvino")
    folder = tmp_path_factory.mktemp("cache")
    weights = shutil.copy(mobilenet_weights, folder / "mobilenet_thin.weights.h5")
    model, _ = load_model("mobilenet_thin", weights)
    network = ovn.openvino_network(ARCH, weights, model)
    return weights, model, network(BATCH)


@pytest.fixture
def conversions(monkeypatch):
    calls = []
    convert = ovn.convert_keras
    monkeypatch.setattr(ovn, "convert_keras", lambda *a: calls.append(1) or convert(*a))
    return calls


def _damage(path, at: int, size: int) -> None:
    """Overwrite ``size`` bytes of ``path`` at ``at`` with others, keeping its size and times."""
    stat = path.stat()
    with open(path, "r+b") as file:
        file.seek(at)
        old = file.read(size)
        file.seek(at)
        file.write(bytes(b ^ 0x5A for b in old))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


def _cached_copy(converted, folder):
    """The weights and their cached IR copied into ``folder`` (the IR still fresh)."""
    weights = shutil.copy2(converted[0], folder / "mobilenet_thin.weights.h5")
    cache = ovn.openvino_cache_path(weights)
    for suffix in (".xml", ".bin", ".sha256"):
        shutil.copy(ovn.openvino_cache_path(converted[0]).with_suffix(suffix),
                    cache.with_suffix(suffix))
    assert ovn.cache_is_fresh(cache, weights) and ovn.ir_intact(cache) is True
    return weights, cache


def test_a_damaged_ir_is_converted_again_with_a_warning(converted, conversions, tmp_path, capfd):
    _, model, maps = converted
    weights, cache = _cached_copy(converted, tmp_path)
    capfd.readouterr()

    binary = cache.with_suffix(".bin")
    _damage(binary, binary.stat().st_size // 3, min(100_000, binary.stat().st_size // 3))
    assert ovn.ir_intact(cache) is False
    assert ovn.cached_openvino_network(weights) is None  # never used as it is
    assert capfd.readouterr().err == (
        f"warning: the OpenVINO cache {cache} does not match the hashes recorded in "
        "mobilenet_thin.openvino.sha256 (damaged); converting the weights again\n")
    dead = subprocess.Popen(["true"])
    dead.wait()  # its process id now names no process
    stale = tmp_path / f".tmp-{dead.pid}-0123abcd.mobilenet_thin.openvino.bin"
    stale.write_bytes(b"half a .bin, its writer killed with -9")
    network = ovn.openvino_network(ARCH, weights, model)
    assert conversions == [1] and network.path == cache and ovn.ir_intact(cache)
    assert not list(tmp_path.glob(".tmp-*"))  # swept, and none of its own left
    for ours, expected in zip(network(BATCH), maps, strict=True):
        np.testing.assert_array_equal(ours, expected)

    _damage(cache, 100, 1)  # the .xml's text
    assert ovn.ir_intact(cache) is False and not ovn.cache_is_fresh(cache, weights)
    ovn.digest_path(cache).unlink()  # an IR of an older rtpose: converted again, quietly
    capfd.readouterr()
    assert ovn.ir_intact(cache) is None and not ovn.cache_is_fresh(cache, weights)
    assert capfd.readouterr().err == ""


def test_a_cache_that_cannot_be_replaced_falls_back_to_a_temporary_copy(converted, tmp_path,
                                                                        capfd):
    weights, model, maps = converted
    folder = tmp_path / "a"
    folder.mkdir()
    weights = shutil.copy(weights, folder / "mobilenet_thin.weights.h5")
    cache = ovn.openvino_cache_path(weights)
    cache.mkdir()  # a folder where the IR goes
    (cache / "keep").write_text("mine")
    network = ovn.openvino_network(ARCH, weights, model)
    assert network.path.parent != folder and network.path.is_file()
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: cannot replace the OpenVINO cache "
                                               f"{cache} (") and "temporary copy" in err[0]
    assert (cache / "keep").read_text() == "mine"
    for ours, expected in zip(network(BATCH), maps, strict=True):
        np.testing.assert_array_equal(ours, expected)


def test_an_immutable_damaged_cache_is_not_used(converted, tmp_path, capfd):
    _, model, maps = converted
    weights, cache = _cached_copy(converted, tmp_path)
    binary = cache.with_suffix(".bin")
    _damage(binary, 1000, 1000)
    files = [str(cache.with_suffix(s)) for s in (".xml", ".bin", ".sha256")]
    done = subprocess.run(["chattr", "+i", *files], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not permitted here: {done.stderr.strip()}")
    try:
        capfd.readouterr()
        network = ovn.openvino_network(ARCH, weights, model)
        err = capfd.readouterr().err.splitlines()
        assert [line.split(" ")[1:4] for line in err] == [["the", "OpenVINO", "cache"],
                                                          ["cannot", "replace", "the"]]
        assert network.path != cache
        for ours, expected in zip(network(BATCH), maps, strict=True):
            np.testing.assert_array_equal(ours, expected)
    finally:
        subprocess.run(["chattr", "-i", *files], check=False)
