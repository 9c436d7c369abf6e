"""Every Keras 3 backend runs the network: the same maps as TensorFlow's to 1e-4, the five
skiers from demo_image.py, and the same COCO results as TensorFlow's. Each backend runs in its
own process (``KERAS_BACKEND`` is read once, at ``import keras``); a backend that is not
installed is skipped (``.ci/run`` installs JAX and PyTorch's CPU build)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import demo_input

from rtpose.coco.evaluate import load_coco, run_pipeline
from rtpose.config import InferenceParams
from rtpose.models import load_model
from rtpose.pipeline import PosePipeline
from rtpose.runtime import make_network

# In the backend's process: the maps of one input, demo_image.py's main, and the COCO results
# of the first images of coco_mini val.
SCRIPT = """
import json, sys
import numpy as np
from rtpose.coco.evaluate import load_coco, run_pipeline
from rtpose.config import InferenceParams
from rtpose.models import load_model
from rtpose.pipeline import PosePipeline
from rtpose.runtime import make_network
from rtpose.tools.demo_image import main
weights, batch, maps, coco, out = sys.argv[1:6]
network = make_network(*load_model("mobilenet_thin", weights))
heat, paf = network(np.load(batch))
np.savez(maps, heat=heat, paf=paf)
main(["--image", "sample_images/ski.jpg", "--scales", "1.0", "--model", weights,
      "--output", out + ".png", "--json", out + ".people.json"])
pipeline = PosePipeline(network, InferenceParams(scales=(1.0,)))
gt = load_coco(coco + "/annotations/person_keypoints_val2017.json")
run = run_pipeline(pipeline, gt, coco + "/val2017", limit=2)
with open(out + ".coco.json", "w") as file:
    json.dump(run.results, file)
"""


@pytest.fixture(params=["jax", "torch"])
def backend(request):
    pytest.importorskip(request.param)
    return request.param


@pytest.mark.slow
def test_a_backend_gives_tensorflows_maps_and_people(backend, repo_root, shared_data,
                                                     mobilenet_weights, tmp_path):
    batch = demo_input(cv2.imread(str(shared_data / "sample_images" / "ski.jpg")))
    np.save(tmp_path / "input.npy", batch)
    coco, out = shared_data / "coco_mini", tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(mobilenet_weights), str(tmp_path / "input.npy"),
         str(tmp_path / "maps.npz"), str(coco), str(out)],
        cwd=repo_root, env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True,
        text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("5 people in sample_images/ski.jpg")
    assert len(json.loads((tmp_path / "out.people.json").read_text())["people"]) == 5

    network = make_network(*load_model("mobilenet_thin", mobilenet_weights))
    heat, paf = network(batch)
    other = np.load(tmp_path / "maps.npz")
    assert other["heat"].shape == heat.shape == (1, 46, 49, 19)
    np.testing.assert_allclose(other["heat"], heat, atol=1e-4)
    np.testing.assert_allclose(other["paf"], paf, atol=1e-4)

    gt = load_coco(coco / "annotations" / "person_keypoints_val2017.json")
    expected = run_pipeline(PosePipeline(network, InferenceParams(scales=(1.0,))), gt,
                            coco / "val2017", limit=2).results
    got = json.loads((tmp_path / "out.coco.json").read_text())
    assert len(expected) > 0
    assert [(r["image_id"], r["keypoints"]) for r in got] == [
        (r["image_id"], r["keypoints"]) for r in expected]
