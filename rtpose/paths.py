"""The repository root: the checkout that holds this package.

The defaults that name the repository's own files are relative to :data:`REPO_ROOT`: the
weights under ``model/``, a training run's output under ``training/``, COCO under ``dataset/``.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
