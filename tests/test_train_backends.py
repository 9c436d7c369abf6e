"""Training on every Keras 3 backend: from the same initial weights and the same batch, the first
3 steps of the training model (Caffe SGD with learning-rate multipliers, momentum and weight decay
on kernels only; the Euclidean stage losses) give TensorFlow's losses and weights on JAX and
PyTorch; and train_pose.py trains from dataset servers and resumes on them. Each backend runs in
its own process (``KERAS_BACKEND`` is read once, at ``import keras``); a backend that is not
installed is skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtpose.models import get_architecture
from rtpose.train import callbacks as cb
from rtpose.train.checkpoints import load_checkpoint
from rtpose.train.optimizer import MultiSGD

# In the backend's process: MobileNet-thin (2 stages) at crop 64, batch 2, weights drawn in the
# order of model.weights from a fixed seed, 3 train_on_batch steps on one fixed batch. The
# settings make every part of the update count: a large weight decay (kernels only), momentum,
# the architecture's multipliers (2 on biases) and a learning rate that moves them.
SCRIPT = """
import json, sys
import numpy as np
from benchmarks.train_step import synthetic_batch
from rtpose.models import get_architecture
from rtpose.train.config import TrainConfig
from rtpose.train.trainer import build_training_model, compile_for_training
out = sys.argv[1]
config = TrainConfig(arch="mobilenet_thin", crop_size=64, batch_size=2, stages=2,
                     from_scratch=True, base_lr=2e-4, momentum=0.9, weight_decay=0.05)
architecture = get_architecture("mobilenet_thin")
model = build_training_model(config, architecture)
rng = np.random.default_rng(0)
model.set_weights([rng.normal(0, np.sqrt(1 / np.prod(w.shape[:-1])) if len(w.shape) == 4
                              else 0.01, w.shape).astype("float32") for w in model.weights])
compile_for_training(model, config, architecture)
x, y = synthetic_batch(2, 64, config.stages, seed=1)
losses = [float(model.train_on_batch(x, y)[0]) for _ in range(3)]
np.savez(out + ".npz", *[np.asarray(w) for w in model.get_weights()])
with open(out + ".json", "w") as file:
    json.dump({"losses": losses, "paths": [w.path for w in model.weights],
               "iterations": int(np.asarray(model.optimizer.iterations))}, file)
"""


def three_steps(backend: str, repo_root: Path, out: Path) -> tuple[dict, list[np.ndarray]]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], cwd=repo_root, capture_output=True, text=True,
        timeout=600, env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(repo_root)})
    assert done.returncode == 0, done.stderr[-3000:]
    weights = np.load(f"{out}.npz")
    return (json.loads(Path(f"{out}.json").read_text()),
            [weights[f"arr_{i}"] for i in range(len(weights.files))])


@pytest.fixture(scope="module")
def tensorflow_steps(repo_root: Path, tmp_path_factory: pytest.TempPathFactory):
    return three_steps("tensorflow", repo_root, tmp_path_factory.mktemp("tf") / "steps")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_first_three_steps_match_tensorflow(backend: str, tensorflow_steps, repo_root: Path,
                                            tmp_path: Path):
    pytest.importorskip(backend)
    expected, expected_weights = tensorflow_steps
    got, weights = three_steps(backend, repo_root, tmp_path / "steps")
    assert got["paths"] == expected["paths"] and got["iterations"] == 3
    losses = expected["losses"]
    assert losses[2] < losses[1] < losses[0]  # the steps did train
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-4)
    for path, w, w0 in zip(got["paths"], weights, expected_weights, strict=True):
        np.testing.assert_allclose(w, w0, rtol=1e-3, atol=1e-6, err_msg=path)


CROP = 64


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_training_resumes_on_a_backend(backend: str, servers: list[str], repo_root: Path,
                                       tmp_path: Path):
    """train_pose.py from dataset servers, one step per epoch; the same command with more
    epochs resumes from last.keras, whose optimiser state TensorFlow reads too."""
    pytest.importorskip(backend)
    weights_dir = tmp_path / "w"
    common = ["training/train_pose.py", "--arch", "mobilenet_thin", "--from-scratch",
              "--stages", "1", "--crop-size", str(CROP), "--batch-size", "1",
              "--steps-per-epoch", "1", "--val-steps", "1", "--base-lr", "1e-6",
              "--train-servers", servers[0], "--val-servers", servers[1],
              "--weights-dir", str(weights_dir), "--logs-dir", str(tmp_path / "logs")]
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(repo_root)}
    for epochs in (1, 2):
        done = subprocess.run([sys.executable, *common, "--epochs", str(epochs)], cwd=repo_root,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming from {weights_dir / 'last.keras'} at epoch 2 of 2" in done.stdout
    assert [row["epoch"] for row in cb.read_log(weights_dir / cb.TRAINING_LOG)] == [0, 1]
    model = load_checkpoint(weights_dir / "last.keras",
                            get_architecture("mobilenet_thin"), 1)
    assert int(model.optimizer.iterations) == 2
    assert isinstance(model.optimizer, MultiSGD)
    assert any(np.any(np.asarray(m) != 0) for m in model.optimizer.momentums)


DISTRIBUTED = """
import itertools, sys
import keras
import numpy as np
from benchmarks.train_step import synthetic_batch
from rtpose.models import get_architecture
from rtpose.train.config import TrainConfig
from rtpose.train.distribute import data_parallel
from rtpose.train.feed import BatchFeed
from rtpose.train.trainer import build_training_model, compile_for_training
architecture = get_architecture("mobilenet_thin")
batch = synthetic_batch(4, 32, 1, seed=2)
result = {}
for distribute in (False, True):
    config = TrainConfig(arch="mobilenet_thin", crop_size=32, stages=1, from_scratch=True,
                         base_lr=1e-3, distribute=distribute)
    scope, replicas = data_parallel(distribute)
    with scope:
        model = build_training_model(config, architecture)
        rng = np.random.default_rng(0)
        initial = [rng.normal(0, 0.1, w.shape).astype("float32") for w in model.weights]
        model.set_weights(initial)
        compile_for_training(model, config, architecture)
    model.fit(BatchFeed(itertools.repeat(batch)), steps_per_epoch=3, epochs=1, verbose=0)
    result[f"replicas{replicas}"] = np.concatenate([np.ravel(w) for w in model.get_weights()])
    result["initial"] = np.concatenate([w.ravel() for w in initial])
    if distribute:
        kernel = model.get_layer("MobilenetV1_Conv2d_0").kernel.value
        result["devices"] = np.array(len(kernel.sharding.device_set))
np.savez(sys.argv[1], **result)
"""


@pytest.mark.slow
def test_jax_data_parallel_on_two_host_devices_trains_like_one(repo_root: Path, tmp_path: Path):
    pytest.importorskip("jax")
    done = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED, str(tmp_path / "out.npz")], cwd=repo_root,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(repo_root),
             "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert "replicas2" in out and int(out["devices"]) == 2  # weights replicated on both
    one, two = out["replicas1"], out["replicas2"]
    moved = np.abs(one - out["initial"]).max()
    assert moved > 1e-4
    assert np.abs(two - one).max() < 1e-3 * moved
