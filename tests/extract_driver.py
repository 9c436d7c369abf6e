"""``extract_poses.py`` with ``helpers.person_pipeline`` in place of the model, for the tests
that run it in a subprocess (to kill it): ``python tests/extract_driver.py ARGS``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402

import rtpose.tools.extract_poses as tool  # noqa: E402

tool.pipeline_from_args = helpers.person_pipeline

if __name__ == "__main__":
    tool.main()
