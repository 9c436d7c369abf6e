"""TensorFlow's multi-worker cluster, read from the ``TF_CONFIG`` variable (JSON) of each host.

``TF_CONFIG`` lists the ``host:port`` of every task, the same lists on every host, and says
which task this process is::

    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}

A ``"chief"`` list of one address may come with the workers. The chief (else worker 0) is task 0
and writes into ``--weights-dir``; every other task writes into the sub-folder ``worker<N>`` of
it (N: its task number), so that each task resumes from its own copy of the same state. Light on
purpose (no TensorFlow import): a bad ``TF_CONFIG`` fails before Keras loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rtpose.errors import RtposeError


@dataclass(frozen=True)
class Cluster:
    """The tasks of a ``TF_CONFIG`` and this process's place among them."""

    chief: tuple[str, ...]  # no address or one
    workers: tuple[str, ...]
    task_type: str  # "chief" or "worker"
    index: int

    @property
    def size(self) -> int:
        """The number of tasks (hosts), chief included."""
        return len(self.chief) + len(self.workers)

    @property
    def task(self) -> int:
        """This process's task number: 0 for the chief (else worker 0), then the workers."""
        return self.index + (len(self.chief) if self.task_type == "worker" else 0)

    @property
    def is_chief(self) -> bool:
        return self.task == 0

    def folder(self, folder: Path) -> Path:
        """Where this task writes what the chief writes to ``folder``."""
        return Path(folder) if self.is_chief else Path(folder) / f"worker{self.task}"


def _addresses(cluster: dict, name: str) -> tuple[str, ...]:
    addresses = cluster.get(name, [])
    if not isinstance(addresses, list):
        raise RtposeError(f"TF_CONFIG: cluster.{name} must be a list of host:port, "
                          f"got {addresses!r}")
    for address in addresses:
        host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
        if not host or not port.isdigit():
            raise RtposeError(f"TF_CONFIG: cluster.{name} holds {address!r}, not host:port")
    if len(set(addresses)) != len(addresses):
        raise RtposeError(f"TF_CONFIG: cluster.{name} lists an address twice")
    return tuple(addresses)


def read_tf_config(text: str | None) -> Cluster | None:
    """The cluster of a ``TF_CONFIG`` value; ``None`` when it is unset or blank.

    Raises ``RtposeError`` (one line, starting ``TF_CONFIG:``) for anything
    ``MultiWorkerMirroredStrategy`` cannot run on: not JSON, no worker, tasks other than
    ``chief`` and ``worker``, more than one chief, an address that is not ``host:port``, or a
    task that is not in the cluster.
    """
    if text is None or not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise RtposeError(f"TF_CONFIG is not JSON ({e})") from e
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise RtposeError('TF_CONFIG must be a JSON object with a "cluster" object and a '
                          '"task" object')
    cluster, task = config["cluster"], config["task"]
    other = sorted(set(cluster) - {"chief", "worker"})
    if other:
        raise RtposeError(f"TF_CONFIG: cluster has {', '.join(other)} tasks; multi-worker "
                          "training takes only chief and worker")
    chief, workers = _addresses(cluster, "chief"), _addresses(cluster, "worker")
    if len(chief) > 1:
        raise RtposeError(f"TF_CONFIG: cluster.chief lists {len(chief)} addresses, at most 1")
    if not workers:
        raise RtposeError("TF_CONFIG: cluster.worker lists no address")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in ("chief", "worker"):
        raise RtposeError(f'TF_CONFIG: task.type must be "chief" or "worker", got {task_type!r}')
    if task_type == "chief" and not chief:
        raise RtposeError("TF_CONFIG: task.type is chief but cluster.chief lists no address")
    count = len(chief if task_type == "chief" else workers)
    if type(index) is not int or not 0 <= index < count:
        raise RtposeError(f"TF_CONFIG: task.index must be an integer in [0, {count}) for the "
                          f"{count} {task_type} address(es), got {index!r}")
    return Cluster(chief, workers, task_type, index)
