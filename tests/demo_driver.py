"""``demo_image.py`` or ``demo_camera.py`` with ``helpers.person_pipeline`` in place of the model,
for the tests that run them in a subprocess (a native crash must not take pytest with it):
``python tests/demo_driver.py demo_image|demo_camera ARGS``."""

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402

if __name__ == "__main__":
    tool = importlib.import_module(f"rtpose.tools.{sys.argv[1]}")
    tool.pipeline_from_args = lambda args, *_, **__: helpers.person_pipeline(args)
    tool.main(sys.argv[2:])
