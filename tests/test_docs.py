"""The documentation site builds with no broken link or reference, its page on the output
contract states rtpose.skeleton's tables, and docs/make_pictures.py still draws the skeleton."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from rtpose.skeleton import COCO_KEYPOINTS, DECODE_ORDER, FLIP_PERMUTATION, LIMBS, PARTS


def test_mkdocs_build_strict(repo_root, tmp_path):
    """``mkdocs build --strict``: every page, link, anchor and API reference resolves."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is missing: pip install -e .[docs]")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert 'id="rtpose.people.People"' in reference  # generated from the docstrings
    assert (tmp_path / "site" / "images" / "skeleton.png").is_file()


def _table_rows(page: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table under the row ``header``."""
    lines = page[page.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_output_contract_states_the_skeleton(repo_root):
    page = (repo_root / "docs" / "output.md").read_text()
    parts = _table_rows(page, "| part | name | mirror | COCO keypoint |")
    assert [(int(r[0]), r[1].strip("`"), int(r[2])) for r in parts[:18]] == [
        (i, name, FLIP_PERMUTATION[i]) for i, name in enumerate(PARTS)]
    assert [r[3] for r in parts[:18]] == [
        str(COCO_KEYPOINTS.index(n)) if n in COCO_KEYPOINTS else "-" for n in PARTS]
    assert parts[18][0] == "18" and "background" in parts[18][1]
    limbs = _table_rows(page, "| limb | parts | PAF channels x, y | grouping order |")
    assert len(limbs) == len(LIMBS) == 19
    for i, (limb, ends, channels, order) in enumerate(limbs):
        a, b = (int(n) for n in re.findall(r"(\d+) `", ends))
        assert (int(limb), (a, b)) == (i, LIMBS[i])
        assert channels == f"{2 * i}, {2 * i + 1}" and int(order) == DECODE_ORDER.index(i)


def test_make_pictures_draws_the_skeleton(repo_root, tmp_path):
    """``docs/make_pictures.py --only skeleton`` needs no model, and draws the committed picture."""
    done = subprocess.run(
        [sys.executable, "docs/make_pictures.py", "--only", "skeleton", "--output-dir",
         str(tmp_path)], cwd=repo_root, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(repo_root)})
    assert done.returncode == 0, done.stderr
    drawn = cv2.imread(str(tmp_path / "skeleton.png"))
    committed = cv2.imread(str(repo_root / "docs" / "images" / "skeleton.png"))
    assert drawn.shape == committed.shape
    assert np.abs(drawn.astype(int) - committed).mean() < 1.0
