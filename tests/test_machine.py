"""The benchmarks' machine header (CPU model, family and model numbers, the speed flags), and
a benchmark's optional runtime missing."""

from __future__ import annotations

import importlib.util
import sys

import pytest

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_bf16 amx_int8 avx512_bf16

processor\t: 1
model name\t: another CPU, ignored
"""


@pytest.fixture(scope="module")
def machine(repo_root):
    """benchmarks/machine.py (benchmarks is not a package)."""
    spec = importlib.util.spec_from_file_location("machine", repo_root / "benchmarks" /
                                                  "machine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_info_reads_the_first_processor(machine, tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    name, flags = machine.cpu_info(path)
    assert name == "Intel(R) Xeon(R) Platinum 8480+ (family 6 model 143)"
    assert flags == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                     "amx_int8"]


def test_header_names_cores_flags_and_load(machine, monkeypatch):
    monkeypatch.setattr(machine, "cpu_info", lambda: ("Some CPU", ["avx2"]))
    header = machine.machine_header()
    assert header.startswith("CPU: Some CPU, ") and "flags: avx2" in header
    assert "cores" in header and "load average" in header
    monkeypatch.setattr(machine, "cpu_info", lambda: ("Old CPU", []))
    assert "flags: none of note" in machine.machine_header()


def test_network_benchmark_without_litert_is_one_line(monkeypatch):
    from benchmarks import network

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(SystemExit) as exit_:
        network.main(["--arch", "cmu", "--size", "16", "--runtime", "litert", "--tasks",
                      "1scale", "--runs", "1"])
    assert exit_.value.code == ("error: the litert runtime needs LiteRT: "
                                "pip install ai-edge-litert")
