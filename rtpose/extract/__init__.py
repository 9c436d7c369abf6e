"""Pose extraction over whole datasets: resumable batch runs on local workers or a Ray cluster.

- ``inputs``: files, folders, globs and list files as ``Item``s with relative names;
- ``writers``: the output formats (OpenPose JSON files, JSON lines, npz) and the rendering;
- ``datasets``: the skeleton dataset formats (kinetics, pyskl, csv) and their corpus files;
- ``store``: where outputs go (a folder, or an fsspec URL), each published only when complete;
- ``manifest``: the run's record of every input, done or failed, appended and synced;
- ``worker``: one worker, the model loaded once, inputs run through the pipelined stream;
- ``engine``: the ``Engine`` protocol; ``local``, ``ray_engine``: its two engines (spawned
  processes; Ray actors);
- ``run``: ``extract``, one run from plan to summary;
- ``read``: ``load_poses`` and ``load_corpus``, outputs back into ``People``.

``python extract_poses.py`` (``rtpose.tools.extract_poses``) is the command.
"""

from rtpose.extract.read import FramePoses, load_corpus, load_poses, load_pyskl

__all__ = ["FramePoses", "load_corpus", "load_poses", "load_pyskl"]
