"""Command-line tools: every command's ``main(argv=None)``, run as ``python -m rtpose.tools.NAME``.

The original's top-level scripts (``demo_image.py``, ``training/train_pose.py``, ...) are
two-line wrappers around these. ``common`` holds the flags and conventions they share.
"""
