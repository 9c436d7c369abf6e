"""demo_image.py end to end: --help, bad input, random CMU weights, real MobileNet-thin weights."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from demo_image import main
from rtpose.config import GroupingParams, InferenceParams
from rtpose.people import People
from rtpose.tools.common import add_inference_args, params_from_args

SKI = "sample_images/ski.jpg"


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out
    for flag in ("--image", "--output", "--json", "--model", "--arch", "--config", "--scales"):
        assert flag in usage


def test_missing_image_is_a_one_line_error(repo_root, tmp_path):
    missing = tmp_path / "nope.jpg"
    done = subprocess.run(
        [sys.executable, "demo_image.py", "--image", str(missing)],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line == f"error: cannot read image {missing}: no such file"
    assert "Traceback" not in done.stderr


def test_unreadable_image_and_bad_flags(tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    with pytest.raises(SystemExit, match="not a readable image"):
        main(["--image", str(not_an_image)])
    with pytest.raises(SystemExit) as info:
        main(["--image", str(not_an_image), "--scales", "1,x"])
    assert info.value.code == 2  # argparse's usage error


def test_missing_weights_is_a_one_line_error(repo_root, tmp_path):
    with pytest.raises(SystemExit, match="^error: weights file not found"):
        main(["--image", str(repo_root / SKI), "--model", str(tmp_path / "none.weights.h5"),
              "--arch", "cmu", "--output", str(tmp_path / "out.png")])


def test_flags_override_the_config_file(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    add_inference_args(parser)
    config = tmp_path / "custom.ini"
    config.write_text("[param]\nscale_search = 2\nthre1 = 0.2\nthre2 = 0.07\n"
                      "[models]\n[[1]]\nboxsize = 320\n")

    args = parser.parse_args(["--config", str(config), "--thre1", "0.3", "--scales", "1,0.5"])
    inference, grouping = params_from_args(args)
    assert inference == InferenceParams(boxsize=320, scales=(1.0, 0.5))
    assert grouping == GroupingParams(thre1=0.3, thre2=0.07)

    monkeypatch.chdir(tmp_path)  # no ./config: the CMU defaults
    assert params_from_args(parser.parse_args([])) == (InferenceParams(), GroupingParams())
    (tmp_path / "config").write_text(config.read_text())  # ./config is read when present
    assert params_from_args(parser.parse_args([]))[0].boxsize == 320


@pytest.mark.slow
def test_random_cmu_weights_run_end_to_end(repo_root, tmp_path, capsys):
    import keras

    from rtpose.models.cmu import build_cmu_model

    keras.utils.set_random_seed(0)
    weights = tmp_path / "model.weights.h5"
    build_cmu_model().save_weights(weights)
    output, people_json = tmp_path / "result.png", tmp_path / "people.json"

    main(["--image", str(repo_root / SKI), "--model", str(weights), "--arch", "cmu",
          "--scales", "0.5", "--output", str(output), "--json", str(people_json)])

    assert cv2.imread(str(output)).shape == (674, 712, 3)
    people = People.from_json(json.loads(people_json.read_text()))
    assert people.keypoints.shape[1:] == (18, 3)
    assert "post-processing" in capsys.readouterr().out


@pytest.mark.slow
def test_mobilenet_thin_finds_the_skiers(repo_root, shared_data, mobilenet_weights, tmp_path,
                                         capsys):
    output, people_json = tmp_path / "result.png", tmp_path / "people.json"
    main(["--image", str(repo_root / SKI), "--model", str(mobilenet_weights),
          "--scales", "1.0", "--output", str(output), "--json", str(people_json)])

    found = People.from_json(people_json.read_text())
    original = json.loads(
        (shared_data / "original_formats" / "ski_original_people.json").read_text()
    )["1scale"]
    assert len(found) >= 4
    # Each person the original found is found again, its parts within a few pixels.
    for person in original:
        parts = np.array(person["parts"])
        present = parts[:, 2] > 0
        distance = np.abs(found.xy[:, present] - parts[present, :2]).max(axis=(1, 2))
        assert distance.min() <= 3

    drawn = cv2.imread(str(output))
    assert drawn.shape == (674, 712, 3)
    assert not np.array_equal(drawn, cv2.imread(str(repo_root / SKI)))
    out = capsys.readouterr().out
    assert f"{len(found)} people" in out and "network" in out
