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
from rtpose.models.cmu import build_cmu_model
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
    """The script's files are exactly the pipeline's people and their drawing."""
    import keras

    from rtpose.draw import draw_people
    from rtpose.models import load_model
    from rtpose.pipeline import PosePipeline
    from rtpose.runtime import make_network

    keras.utils.set_random_seed(0)
    weights = tmp_path / "model.weights.h5"
    build_cmu_model().save_weights(weights)
    output, people_json = tmp_path / "result.png", tmp_path / "people.json"

    main(["--image", str(repo_root / SKI), "--model", str(weights), "--arch", "cmu",
          "--scales", "0.5", "--thre1", "0.0", "--output", str(output),
          "--json", str(people_json)])

    image = cv2.imread(str(repo_root / SKI))
    pipeline = PosePipeline(make_network(*load_model("cmu", weights)),
                            InferenceParams(scales=(0.5,)), GroupingParams(thre1=0.0))
    expected = pipeline.run(image)
    written = json.loads(people_json.read_text())
    assert written == json.loads(json.dumps(expected.people.to_openpose_json()))
    np.testing.assert_array_equal(cv2.imread(str(output)),
                                  draw_people(image, expected.people, expected.peaks))
    assert sum(len(p) for p in expected.peaks) > 0  # something was drawn
    assert f"{len(expected.people)} people in" in capsys.readouterr().out


@pytest.mark.slow
def test_mobilenet_thin_finds_the_skiers_quietly(repo_root, shared_data, mobilenet_weights,
                                                 tmp_path):
    """As a user runs it: the original's five people, and nothing on stderr (no TensorFlow
    start-up lines)."""
    output, people_json = tmp_path / "result.png", tmp_path / "people.json"
    done = subprocess.run(
        [sys.executable, "demo_image.py", "--image", SKI, "--model", str(mobilenet_weights),
         "--scales", "1.0", "--output", str(output), "--json", str(people_json)],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == ""

    found = People.from_json(people_json.read_text())
    original = json.loads(
        (shared_data / "original_formats" / "ski_original_people.json").read_text()
    )["1scale"]
    assert len(found) == len(original) == 5
    # Each person the original found is found again, its parts within a pixel.
    for person in original:
        parts = np.array(person["parts"])
        present = parts[:, 2] > 0
        distance = np.abs(found.xy[:, present] - parts[present, :2]).max(axis=(1, 2))
        assert distance.min() <= 1

    drawn = cv2.imread(str(output))
    assert drawn.shape == (674, 712, 3)
    assert not np.array_equal(drawn, cv2.imread(str(repo_root / SKI)))
    assert done.stdout.startswith("5 people in")
