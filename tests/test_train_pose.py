"""training/train_pose.py and rtpose.train: initialisation, bookkeeping, real runs.

The slow tests train on loopback from ``training/dataset_server.py`` serving the original
3-sample HDF5 (``original_formats/train_dataset_first3.h5``) at a small crop.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from helpers import free_port

from rtpose.errors import RtposeError, WeightsError
from rtpose.models import get_architecture
from rtpose.tools.train_pose import build_parser, config_from_args
from rtpose.train import callbacks as cb
from rtpose.train import checkpoints, distribute, trainer
from rtpose.train.cluster import read_tf_config
from rtpose.train.config import TrainConfig
from rtpose.train.initial_weights import VGG19_LAYERS, copy_weights_by_name, read_vgg19_h5
from rtpose.train.optimizer import MultiSGD

CROP = 128


def run_script(repo_root: Path, *args: str, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    script = "train_pose.py" if cwd else "training/train_pose.py"
    return subprocess.run(
        [sys.executable, script, *args], cwd=cwd or repo_root, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONPATH": str(repo_root)},
    )


def write_keras2_vgg19(path: Path, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """A file in the layout of Keras' vgg19 no-top weights, random arrays of VGG19's shapes."""
    shapes = {"block1_conv1": (3, 64), "block1_conv2": (64, 64), "block2_conv1": (64, 128),
              "block2_conv2": (128, 128), "block3_conv1": (128, 256), "block3_conv2": (256, 256),
              "block3_conv3": (256, 256), "block3_conv4": (256, 256), "block4_conv1": (256, 512),
              "block4_conv2": (512, 512), "block4_conv3": (512, 512)}
    arrays = {}
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [n.encode() for n in ["input_1", *shapes, "block1_pool"]]
        file.create_group("input_1").attrs["weight_names"] = []
        file.create_group("block1_pool").attrs["weight_names"] = []
        for name, (cin, cout) in shapes.items():
            group = file.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            arrays[name] = [rng.normal(size=(3, 3, cin, cout)).astype("float32"),
                            rng.normal(size=(cout,)).astype("float32")]
            group[f"{name}/kernel:0"] = arrays[name][0]
            group[f"{name}/bias:0"] = arrays[name][1]
    return arrays


def test_help_from_repo_root_and_training_dir(repo_root: Path):
    for cwd in (None, repo_root / "training"):
        done = run_script(repo_root, "--help", cwd=cwd)
        assert done.returncode == 0, done.stderr
        for flag in ("--batch-size", "--base-lr", "--stepsize", "--max-iter", "--train-servers",
                     "--val-servers", "--weights-dir", "--vgg-weights", "--init-weights",
                     "--from-scratch", "--no-resume", "--distribute", "--steps-per-epoch"):
            assert flag in done.stdout
        assert "136106" in done.stdout and "117576" in done.stdout


def test_missing_server_is_one_line_error(repo_root: Path, tmp_path: Path):
    port = free_port()
    done = run_script(repo_root, "--train-servers", f"127.0.0.1:{port}", "--timeout", "1",
                      "--arch", "mobilenet_thin", "--from-scratch", "--crop-size", "64",
                      "--weights-dir", str(tmp_path / "w"), "--logs-dir", str(tmp_path / "l"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no sample from tcp://127.0.0.1:") and str(port) in last


def test_bad_server_list_is_a_usage_error(repo_root: Path):
    done = run_script(repo_root, "--train-servers", "localhost")
    assert done.returncode == 2 and "host:port" in done.stderr


def test_vgg19_file_initialises_the_cmu_front(tmp_path: Path):
    arrays = write_keras2_vgg19(tmp_path / "vgg19.h5", np.random.default_rng(0))
    config = TrainConfig(crop_size=64, stages=1, vgg_weights=tmp_path / "vgg19.h5")
    model = trainer.build_training_model(config, get_architecture("cmu"))
    for cmu_name, vgg_name in VGG19_LAYERS.items():
        kernel, bias = model.get_layer(cmu_name).get_weights()
        np.testing.assert_array_equal(kernel, arrays[vgg_name][0])
        np.testing.assert_array_equal(bias, arrays[vgg_name][1])
    assert not np.allclose(model.get_layer("conv4_3_CPM").get_weights()[0][..., :1], 0)


def test_vgg19_file_errors(tmp_path: Path):
    with pytest.raises(WeightsError, match="not found"):
        read_vgg19_h5(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file.create_group("dense")
    with pytest.raises(WeightsError, match="no layer block1_conv1"):
        read_vgg19_h5(tmp_path / "other.h5")


def test_no_vgg19_download_says_what_to_pass(monkeypatch: pytest.MonkeyPatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "VGG19", offline)
    config = TrainConfig(crop_size=64, stages=1)
    with pytest.raises(WeightsError, match="--vgg-weights PATH .* or --from-scratch"):
        trainer.build_training_model(config, get_architecture("cmu"))


def test_init_weights_and_testing_copy_round_trip(mobilenet_weights: Path):
    architecture = get_architecture("mobilenet_thin")
    config = TrainConfig(arch="mobilenet_thin", crop_size=64, init_weights=mobilenet_weights)
    model = trainer.build_training_model(config, architecture)
    reference = architecture.build()
    architecture.load_weights(reference, mobilenet_weights)
    testing = architecture.build()
    assert copy_weights_by_name(model, testing) == len([x for x in testing.layers if x.weights])
    for a, b in zip(reference.weights, testing.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(WeightsError, match="has no layer"):
        copy_weights_by_name(architecture.build(stages=2), testing)


def test_log_helpers(tmp_path: Path):
    path = tmp_path / cb.TRAINING_LOG
    assert cb.read_log(path) == [] and cb.next_epoch([]) == 0
    path.write_text("epoch,loss,val_loss\n0,5.0,4.0\n1,3.0,4.5\n2,2.0,\n")
    log = cb.read_log(path)
    assert cb.next_epoch(log) == 3
    assert cb.best_loss(log, "val_loss") == 4.0 and cb.best_loss(log, "other") == np.inf
    cb.plot_losses(log, tmp_path / "losses.png")
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_epochs_follow_max_iter():
    config = TrainConfig()
    assert config.iterations_per_epoch == 11757 and config.validation_steps == 247
    assert config.total_epochs == 52  # ceil(600000 / 11757), as the original's schedule
    short = TrainConfig(steps_per_epoch=4, max_iter=10)
    assert short.total_epochs == 3
    with pytest.raises(RtposeError, match="multiple of 8"):
        trainer.train(TrainConfig(crop_size=100))


@pytest.mark.slow
def test_finetune_mobilenet_resumes_with_its_optimiser_state(
    servers: tuple[str, str], mobilenet_weights: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    common = ["--arch", "mobilenet_thin", "--crop-size", str(CROP), "--batch-size", "2",
              "--train-servers", servers[0], "--val-servers", servers[1], "--steps-per-epoch", "6",
              "--val-steps", "12", "--base-lr", "1e-8", "--weights-dir", str(tmp_path / "w"),
              "--logs-dir", str(tmp_path / "logs"), "--init-weights", str(mobilenet_weights)]
    first = trainer.train(config_from_args(build_parser().parse_args(
        [*common, "--epochs", "1"])))
    saved = [m.numpy() for m in first.model.optimizer.momentums]
    assert int(first.model.optimizer.iterations) == 6

    loaded = {}

    def spy(*args):
        model = load(*args)
        loaded["momentums"] = [m.numpy() for m in model.optimizer.momentums]
        loaded["iterations"] = int(model.optimizer.iterations)
        return model

    load = trainer.load_checkpoint
    monkeypatch.setattr(trainer, "load_checkpoint", spy)
    second = trainer.train(config_from_args(build_parser().parse_args(
        [*common, "--epochs", "4"])))

    assert second.epoch == [1, 2, 3]  # continued at epoch 2
    assert loaded["iterations"] == 6
    assert any(np.any(m != 0) for m in saved)
    for before, after in zip(saved, loaded["momentums"], strict=True):
        np.testing.assert_array_equal(before, after)
    assert isinstance(second.model.optimizer, MultiSGD)
    assert int(second.model.optimizer.iterations) == 24

    weights_dir = tmp_path / "w"
    log = cb.read_log(weights_dir / cb.TRAINING_LOG)
    assert [row["epoch"] for row in log] == [0, 1, 2, 3]
    assert all(row["learning_rate"] == pytest.approx(1e-8) for row in log)
    print(json.dumps({"mobilenet_finetune": [(row["loss"], row["val_loss"]) for row in log]}))
    assert log[-1]["val_loss"] < log[0]["val_loss"]
    for name in ("weights.0001.weights.h5", "weights.0004.weights.h5", cb.BEST_WEIGHTS,
                 cb.LAST_CHECKPOINT, cb.LOSS_PLOT):
        assert (weights_dir / name).is_file(), name
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))
    # the per-epoch files are testing-model weights, loadable as any weights of the architecture
    architecture = get_architecture("mobilenet_thin")
    testing = architecture.build()
    architecture.load_weights(testing, weights_dir / "weights.0004.weights.h5")
    np.testing.assert_array_equal(
        testing.get_layer("MobilenetV1_Conv2d_0").get_weights()[0],
        second.model.get_layer("MobilenetV1_Conv2d_0").get_weights()[0])


@pytest.mark.slow
def test_cmu_from_scratch_training_loss_goes_down(repo_root: Path, servers: tuple[str, str],
                                                  tmp_path: Path):
    done = run_script(
        repo_root, "--arch", "cmu", "--from-scratch", "--crop-size", str(CROP),
        "--batch-size", "2", "--train-servers", servers[0], "--val-servers", servers[1],
        "--steps-per-epoch", "4", "--val-steps", "1", "--epochs", "3", "--base-lr", "1e-4",
        "--weights-dir", str(tmp_path / "w"), "--logs-dir", str(tmp_path / "logs"),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = cb.read_log(tmp_path / "w" / cb.TRAINING_LOG)
    print(json.dumps({"cmu_scratch": [(row["loss"], row["val_loss"]) for row in log]}))
    assert len(log) == 3
    assert log[-1]["loss"] < log[0]["loss"]


DISTRIBUTED = """
import itertools
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from rtpose.models import get_architecture
from rtpose.train.config import TrainConfig
from rtpose.train.distribute import make_strategy
from rtpose.train.feed import BatchFeed
from rtpose.train.trainer import build_training_model, compile_for_training

rng = np.random.default_rng(0)
batch, crop, stages = 4, 32, 2
side = crop // 8
inputs = (rng.uniform(0, 255, (batch, crop, crop, 3)).astype("float32"),
          (rng.uniform(size=(batch, side, side, 38)) > 0.2).astype("float32"),
          (rng.uniform(size=(batch, side, side, 19)) > 0.2).astype("float32"))
labels = tuple(a for _ in range(stages) for a in (
    rng.normal(0, 0.1, (batch, side, side, 38)).astype("float32"),
    rng.uniform(0, 1, (batch, side, side, 19)).astype("float32")))
architecture = get_architecture("cmu")
initial = None
result = {}
for distribute in (False, True):
    config = TrainConfig(crop_size=crop, stages=stages, from_scratch=True,
                         distribute=distribute)
    strategy = make_strategy(distribute)
    with strategy.scope():
        model = build_training_model(config, architecture)
        if initial is None:  # He-scaled, so that every layer learns
            initial = [rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])), w.shape)
                       if w.ndim == 4 else rng.normal(0, 0.01, w.shape)
                       for w in model.get_weights()]
        model.set_weights(initial)
        compile_for_training(model, config, architecture)
    # One batch over and over: MirroredStrategy discards a few batches of a stream when it
    # starts (see BatchFeed), so only a constant stream gives both runs the same batches.
    model.fit(BatchFeed(itertools.repeat((inputs, labels))), steps_per_epoch=3, epochs=1,
              verbose=0)
    result[f"replicas{strategy.num_replicas_in_sync}"] = model.get_weights()
np.savez(sys.argv[1], initial=np.concatenate([w.ravel() for w in initial]),
         **{k: np.concatenate([w.ravel() for w in v]) for k, v in result.items()})
"""


@pytest.mark.slow
def test_two_logical_cpus_train_like_one(repo_root: Path, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED, str(tmp_path / "out.npz")], cwd=repo_root,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    one, two = out["replicas1"], out["replicas2"]
    moved = np.abs(one - out["initial"]).max()
    assert moved > 1e-4
    assert np.abs(two - one).max() < 1e-3 * moved


def tf_config(workers: list[str], index: int, **extra) -> str:
    return json.dumps({"cluster": {"worker": workers, **extra},
                       "task": {"type": "worker", "index": index}})


def test_tf_config_gives_the_task_and_its_folders(tmp_path: Path):
    assert read_tf_config(None) is None and read_tf_config("  ") is None
    cluster = read_tf_config(tf_config(["h1:2222", "h2:2222"], 1))
    assert (cluster.size, cluster.task, cluster.is_chief) == (2, 1, False)
    assert cluster.folder(tmp_path) == tmp_path / "worker1"
    chief = read_tf_config(json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1"]},
                                       "task": {"type": "chief", "index": 0}}))
    assert (chief.size, chief.task, chief.folder(tmp_path)) == (2, 0, tmp_path)
    worker = read_tf_config(json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1"]},
                                        "task": {"type": "worker", "index": 0}}))
    assert worker.task == 1 and not worker.is_chief


@pytest.mark.parametrize("text, message", [
    ("{worker", "TF_CONFIG is not JSON"),
    ('["h:1"]', 'a "cluster" object and a "task" object'),
    (tf_config(["h:1"], 0, ps=["p:1"]), "has ps tasks"),
    (tf_config(["h"], 0), "holds 'h', not host:port"),
    (tf_config(["h:1", "h:1"], 0), "lists an address twice"),
    (tf_config([], 0), "cluster.worker lists no address"),
    (tf_config(["h:1"], 0, chief=["a:1", "b:1"]), "lists 2 addresses, at most 1"),
    (tf_config(["h:1", "g:1"], 2), r"integer in \[0, 2\) for the 2 worker address"),
    (tf_config(["h:1"], "0"), "got '0'"),
    (json.dumps({"cluster": {"worker": ["h:1"]}, "task": {"type": "ps", "index": 0}}),
     'must be "chief" or "worker"'),
])
def test_bad_tf_config_is_one_line(text: str, message: str):
    with pytest.raises(RtposeError, match=message) as error:
        read_tf_config(text)
    assert str(error.value).startswith("TF_CONFIG") and "\n" not in str(error.value)


def test_bad_tf_config_stops_train_pose_before_keras(repo_root: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(repo_root), "TF_CONFIG": '{"cluster": {}}'}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "training/train_pose.py", "--distribute",
         "--weights-dir", str(tmp_path / "w")],
        cwd=repo_root, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if not x.startswith("import time:")]
    assert lines == ['error: TF_CONFIG must be a JSON object with a "cluster" object and a '
                     '"task" object']
    assert not re.search(r"\|\s*(keras|tensorflow)$", done.stderr, re.M)  # before Keras
    assert not (tmp_path / "w").exists()


def test_tf_config_on_another_backend_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "jax")
    with pytest.raises(RtposeError, match="TF_CONFIG describes a TensorFlow cluster but "
                                          "KERAS_BACKEND is jax"):
        distribute.data_parallel(True, read_tf_config(tf_config(["h:1", "g:1"], 0)))


# MultiWorkerMirroredStrategy first: it sets up TensorFlow's runtime, which must not have started.
STRATEGIES = """
import json, sys
import tensorflow as tf
from rtpose.train.cluster import read_tf_config
from rtpose.train.distribute import make_strategy
strategy = make_strategy(True, read_tf_config(sys.argv[1]))
print(json.dumps([isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy),
                  strategy.num_replicas_in_sync, strategy.cluster_resolver.task_id,
                  type(make_strategy(True)).__name__, type(make_strategy(False)).__name__]))
"""


def test_each_device_of_a_cluster_pulls_its_share_of_a_batch():
    assert distribute.per_device_batch(10, 2) == 5
    assert distribute.per_device_batch(10, 1) == 10
    with pytest.raises(RtposeError, match=r"^--batch-size 10 does not divide among the 3 "
                                          r"devices of the cluster: use a multiple of 3$"):
        distribute.per_device_batch(10, 3)


@pytest.mark.slow
def test_distribute_picks_multi_worker_strategy_with_tf_config(repo_root: Path):
    config = tf_config([f"localhost:{free_port()}"], 0)
    done = subprocess.run(
        [sys.executable, "-c", STRATEGIES, config], cwd=repo_root, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(repo_root),
                                     "TF_CONFIG": config})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [
        True, 1, 0, "MirroredStrategy", "_DefaultDistributionStrategy"]


LONG = pytest.mark.skipif(os.environ.get("RTPOSE_LONG_TESTS") != "1",
                          reason="a long multi-process run: set RTPOSE_LONG_TESTS=1")


@LONG
@pytest.mark.slow
def test_two_workers_train_in_step_and_resume(repo_root: Path, servers: tuple[str, str],
                                              tmp_path: Path):
    """Two train_pose.py processes on localhost, one MultiWorkerMirroredStrategy cluster by
    TF_CONFIG: each pulls one device's share of a batch, worker 0 writes --weights-dir, worker 1
    its worker1 sub-folder, both the same model; the same commands with one more epoch resume
    both from their own last.keras; a host whose state is another epoch's stops them all."""
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    weights_dir = tmp_path / "w"

    def run(epochs: int) -> list[tuple[int, str, str]]:
        procs = [subprocess.Popen(
            [sys.executable, "training/train_pose.py", "--distribute", "--arch",
             "mobilenet_thin", "--from-scratch", "--stages", "1", "--crop-size", str(CROP),
             "--batch-size", "2", "--steps-per-epoch", "2", "--val-steps", "1",
             "--base-lr", "1e-6", "--epochs", str(epochs), "--train-servers", servers[0],
             "--val-servers", servers[1], "--weights-dir", str(weights_dir),
             "--logs-dir", str(tmp_path / "logs")],
            cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(repo_root), "TF_CONFIG": tf_config(workers, i)})
            for i in range(2)]
        streams = [proc.communicate(timeout=600) for proc in procs]
        return [(proc.returncode, *out) for proc, out in zip(procs, streams, strict=True)]

    for epochs in (1, 2):
        outputs = run(epochs)
        for code, _, err in outputs:
            assert code == 0, err[-3000:]
    folders = [weights_dir, weights_dir / "worker1"]
    for i, ((_, out, _), folder) in enumerate(zip(outputs, folders, strict=True)):
        assert (f"data parallel on 2 devices of 2 hosts (this is task {i}, writing to {folder}), "
                "2 samples per step in all, 1 per device") in out
        assert f"resuming from {folder / cb.LAST_CHECKPOINT} at epoch 2 of 2" in out
    logs = [cb.read_log(folder / cb.TRAINING_LOG) for folder in folders]
    assert [row["epoch"] for row in logs[0]] == [0, 1] and logs[0] == logs[1]
    architecture = get_architecture("mobilenet_thin")
    models = [checkpoints.load_checkpoint(folder / cb.LAST_CHECKPOINT, architecture, 1)
              for folder in folders]
    assert [int(m.optimizer.iterations) for m in models] == [4, 4]
    for a, b in zip(*(m.get_weights() for m in models), strict=True):
        np.testing.assert_array_equal(a, b)

    for name in (cb.LAST_CHECKPOINT, cb.TRAINING_LOG):  # worker 1 would start over
        (folders[1] / name).unlink()
    for code, _, err in run(3):
        assert code != 0 and "Traceback" not in err, err[-3000:]
        assert err.strip().splitlines()[-1].startswith(
            "error: the hosts resume from different epochs (per device: 3, 1)"), err[-3000:]
