"""The wheel: built from the checkout, installed into a fresh virtual environment outside it,
it holds the library only, and the README's Python example finds the 5 skiers with the store
in a temporary folder (the weights and OpenVINO's cached model copied in: no network).

The environment reuses this interpreter's packages through a path in a ``.pth`` file (not as a
site folder, so an editable install of rtpose there is not seen): nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rtpose import store

pytestmark = pytest.mark.slow
EXAMPLE = """
import rtpose
model = rtpose.load()
people = model("ski.jpg")
print(rtpose.__file__)
print(len(people), people.keypoints.shape, people.scores.shape)
"""


def _run(*command, **kw) -> str:
    done = subprocess.run(command, capture_output=True, text=True, **kw)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def wheel(repo_root, tmp_path_factory) -> Path:
    if not (importlib.util.find_spec("setuptools.command.bdist_wheel")
            or importlib.util.find_spec("wheel")):
        pytest.skip("building the wheel offline needs setuptools>=70.1 (requirements.txt)")
    source = tmp_path_factory.mktemp("source")  # a copy: the build leaves nothing in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, source)
    shutil.copytree(repo_root / "rtpose", source / "rtpose",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(source), "-w", str(dist))
    (built,) = dist.glob("rtpose-*.whl")
    return built


def test_wheel_holds_the_library_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "rtpose/api.py" in names and "rtpose/tools/demo_image.py" in names
    assert all(n.startswith(("rtpose/", "rtpose-")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rtpose = rtpose.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_runs_the_readme_example_outside_the_checkout(wheel, tmp_path,
                                                                    repo_root):
    weights = store.locate("mobilenet_thin")
    if weights is None:
        pytest.skip("no MobileNet-thin weights: run the README's set-up command")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    purelib = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                   .strip())
    (purelib / "host.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--ignore-installed", str(wheel))
    home = tmp_path / "store"
    home.mkdir()
    for name in ("mobilenet_thin.weights.h5", "mobilenet_thin.openvino.xml",
                 "mobilenet_thin.openvino.bin"):  # the weights, and OpenVINO's model if cached
        if (weights.parent / name).is_file():
            shutil.copy2(weights.parent / name, home / name)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(repo_root / "sample_images" / "ski.jpg", work / "ski.jpg")
    env = {**os.environ, store.HOME_ENV: str(home), "PYTHONPATH": ""}
    out = _run(str(python), "-c", EXAMPLE, cwd=work, env=env).splitlines()
    assert Path(out[0]).is_relative_to(venv)
    assert out[1] == "5 (5, 18, 3) (5,)"
    out = _run(str(venv / "bin" / "rtpose"), "image", "--image", "ski.jpg", cwd=work, env=env)
    assert out.startswith("5 people in ski.jpg")
    assert (work / "result.png").is_file()
