"""The dataset server and client over loopback: batches, workers, seeds, stopping and errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from helpers import free_port

from rtpose.data.client import DataGeneratorClient, DataServerTimeout
from rtpose.data.wire import decode_message, encode_message
from rtpose.tools import dataset_server as server

FRAME_KEYS = ("raw_frame0_header", "raw_frame1_image", "raw_frame2_mask", "raw_frame3_label")


@pytest.fixture(scope="module")
def dataset(shared_data) -> Path:
    return shared_data / "original_formats" / "train_dataset_first3.h5"


@pytest.fixture(scope="module")
def cpp_messages(shared_data):
    with np.load(shared_data / "original_formats" / "rmpe_wire_first3.npz") as npz:
        frames = [npz[key] for key in FRAME_KEYS]
    return [[f[i].tobytes() for f in frames] for i in range(len(frames[0]))]


def start_server(repo_root: Path, dataset: Path, port: int, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo_root), os.environ.get(
        "PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, str(repo_root / "training" / "dataset_server.py"), str(dataset),
         str(port), "--quiet", *args],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def gone(pids: list[int], wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_client_batches_from_pushed_cpp_messages(cpp_messages):
    """The client turns C++ messages into the training model's inputs and 12 outputs."""
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    try:
        with DataGeneratorClient("127.0.0.1", port, batch_size=3, timeout=10) as client:
            for message in cpp_messages * 2:  # PUSH waits until the client is connected
                push.send_multipart(message)
            inputs, outputs = next(client.gen())
    finally:
        push.close(linger=0)
        context.term()
    image, paf_mask, heat_mask = inputs
    assert image.shape == (3, 368, 368, 3) and image.dtype == np.float32
    assert paf_mask.shape == (3, 46, 46, 38) and heat_mask.shape == (3, 46, 46, 19)
    assert len(outputs) == 12
    for k, array in enumerate(outputs):
        assert array.dtype == np.float32
        assert array.shape == ((3, 46, 46, 38) if k % 2 == 0 else (3, 46, 46, 19))
    for b, message in enumerate(cpp_messages):
        want_image, want_mask, want_label = decode_message(message)
        np.testing.assert_array_equal(image[b], want_image.transpose(1, 2, 0))
        np.testing.assert_allclose(paf_mask[b], np.repeat(want_mask[..., None], 38, -1))
        np.testing.assert_allclose(heat_mask[b], np.repeat(want_mask[..., None], 19, -1))
        np.testing.assert_allclose(outputs[0][b], want_label[:38].transpose(1, 2, 0), rtol=1e-6)
        np.testing.assert_allclose(outputs[11][b], want_label[38:].transpose(1, 2, 0), rtol=1e-6)


def test_one_client_pulls_from_several_servers():
    context = zmq.Context()
    pushes = [context.socket(zmq.PUSH) for _ in range(2)]
    ports = [p.bind_to_random_port("tcp://127.0.0.1") for p in pushes]
    label = np.zeros((57, 2, 2))
    try:
        client = DataGeneratorClient(endpoints=[("127.0.0.1", p) for p in ports], timeout=10)
        with client:
            for value, push in enumerate(pushes):
                for _ in range(3):
                    push.send_multipart(encode_message(
                        np.full((3, 16, 16), value, np.uint8), np.ones((2, 2)), label))
            values = sorted(int(client.receive()[0][0, 0, 0]) for _ in range(6))
    finally:
        for push in pushes:
            push.close(linger=0)
        context.term()
    assert values == [0, 0, 0, 1, 1, 1]


def test_client_times_out_without_a_server():
    port = free_port()
    start = time.monotonic()
    with DataGeneratorClient("127.0.0.1", port, timeout=0.3) as client:
        with pytest.raises(DataServerTimeout, match=f"127.0.0.1:{port} within 0.3 s"):
            next(client.gen())
    assert time.monotonic() - start < 5


@pytest.mark.slow
def test_server_with_two_workers_then_terminated(repo_root, dataset):
    port = free_port()
    proc = start_server(repo_root, dataset, port, "--workers", "2", "--seed", "3")
    try:
        with DataGeneratorClient("127.0.0.1", port, batch_size=4, timeout=60) as client:
            batches = client.gen()
            for _ in range(2):
                (image, paf_mask, heat_mask), outputs = next(batches)
                assert image.shape == (4, 368, 368, 3) and image.dtype == np.float32
                assert paf_mask.shape == (4, 46, 46, 38) and heat_mask.shape == (4, 46, 46, 19)
                assert [o.shape[-1] for o in outputs] == [38, 19] * 6
                assert 0 <= paf_mask.min() and paf_mask.max() <= 1
                assert outputs[1][..., :18].max() > 0.9  # somebody's heatmap peak
            workers = children(proc.pid)
            assert len(workers) >= 2
            code, err = stop(proc, signal.SIGTERM)
            assert code == 0 and "Traceback" not in err, err
            assert gone(workers), "worker processes outlived the server"
            client.timeout = 1.0
            with pytest.raises(DataServerTimeout):
                for _ in range(1000):  # samples already queued at the client come first
                    client.receive()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_seeded_servers_repeat_their_stream_and_stop_on_ctrl_c(repo_root, dataset):
    ports = [free_port(), free_port()]
    procs = [start_server(repo_root, dataset, p, "--seed", "11", "--crop-size", "184")
             for p in ports]
    try:
        streams = []
        for port in ports:
            with DataGeneratorClient("127.0.0.1", port, timeout=60) as client:
                streams.append([client.receive() for _ in range(4)])
        for first, second in zip(*streams, strict=True):
            assert first[0].shape == (3, 184, 184) and first[2].shape == (57, 23, 23)
            for a, b in zip(first, second, strict=True):
                np.testing.assert_array_equal(a, b)
        # the four samples are not all alike: shuffled epochs and random augmentation
        assert not np.array_equal(streams[0][0][0], streams[0][3][0])
        for proc in procs:
            workers = children(proc.pid)
            code, err = stop(proc, signal.SIGINT)
            assert code == 0 and "Traceback" not in err and "stopped" in err, err
            assert gone(workers)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_no_augment_serves_the_same_samples_in_file_order(repo_root, dataset):
    import dataclasses

    from rtpose.coco.hdf5_dataset import HDF5Dataset
    from rtpose.data.augment import DEFAULT_PARAMS, Augmentation
    from rtpose.data.transformer import transform_with

    port = free_port()
    proc = start_server(repo_root, dataset, port, "--no-augment", "--crop-size", "184")
    try:
        with DataGeneratorClient("127.0.0.1", port, timeout=60) as client:
            stream = [client.receive() for _ in range(7)]
    finally:
        proc.kill()
        proc.wait()
    params = dataclasses.replace(DEFAULT_PARAMS, crop_size=184)
    with HDF5Dataset(dataset) as samples:
        expected = [transform_with(samples[i], Augmentation(), params) for i in range(3)]
    assert not np.array_equal(expected[0][0], expected[1][0])
    for k, message in enumerate(stream):
        for got, want in zip(message, expected[k % 3], strict=True):
            np.testing.assert_array_equal(got, want)


def test_port_in_use_is_a_one_line_error(dataset):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exc:
            server.main([str(dataset), str(port), "--quiet"])
    assert exc.value.code == f"error: port {port} is already in use (another server?)"


def test_bad_arguments_are_one_line_errors(tmp_path, dataset):
    not_hdf5 = tmp_path / "broken.h5"
    not_hdf5.write_text("not an HDF5 file")
    port = str(free_port())
    for argv, message in [
        ([str(not_hdf5), port], "not a readable HDF5 file"),
        ([str(dataset), port, "--crop-size", "100"], "multiple of stride"),
        ([str(dataset), port, "--workers", "0"], "at least one worker"),
    ]:
        with pytest.raises(SystemExit) as exc:
            server.main([*argv, "--quiet"])
        assert str(exc.value.code).startswith("error: ") and message in str(exc.value.code)
        assert "\n" not in str(exc.value.code)


def test_missing_dataset_exits_with_one_line(repo_root, tmp_path):
    proc = start_server(repo_root, tmp_path / "missing.h5", free_port())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert err.strip().splitlines() == [
        f"error: dataset file {tmp_path / 'missing.h5'} not found; run generate_hdf5.py first"
    ]


@pytest.mark.slow
def test_a_failing_worker_stops_the_server_with_its_error(repo_root, dataset, tmp_path):
    import h5py

    broken = tmp_path / "broken.h5"
    with h5py.File(dataset, "r") as src, h5py.File(broken, "w") as dst:
        dst.create_dataset("datum/0000000", data=src["datum/0000000"][()])  # readable
        dst.create_dataset("datum/0000001", data=np.zeros((6, 50, 80), np.float32))  # not uint8
    proc = start_server(repo_root, broken, free_port(), "--seed", "0")
    try:  # the worker reaches the broken sample in its first epoch, client or not
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    assert "is not a uint8 (C, H, W) array" in err and "Traceback" not in err
    assert lines[-1] == "error: worker 0 stopped (exit code 3)"


def test_scripts_help_and_client_script_without_server(capsys):
    from rtpose.tools import ds_generator_client as client

    for module in (server, client):
        with pytest.raises(SystemExit) as exc:
            module.main(["--help"])
        assert exc.value.code == 0
    assert "rmpe_dataset_server" in capsys.readouterr().out
    port = free_port()
    with pytest.raises(SystemExit) as exc:
        client.main(["--port", str(port), "--timeout", "0.3", "--batches", "1"])
    assert str(exc.value.code).startswith(f"error: no sample from tcp://localhost:{port}")
