"""A local stand-in for the Hugging Face Hub, as much of it as ``hf_hub_download`` reads: HEAD and
GET of ``/{repo}/resolve/{revision}/{filename}``, answered with the file's ``Content-Length``, its
``ETag`` (the sha256, as the Hub gives for LFS files) and the revision's commit
(``X-Repo-Commit``); else 404 with the Hub's ``X-Error-Code`` (``RepoNotFound``,
``EntryNotFound``). Every request is recorded as (method, path)."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rtpose.files import sha256


@dataclass(frozen=True)
class _Served:
    path: Path
    size: int
    etag: str
    commit: str


@dataclass
class LocalHub:
    """The files served (``serve``), the requests received, the address (``url``)."""

    url: str = ""
    files: dict[str, _Served] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _digests: dict[Path, str] = field(default_factory=dict)

    def serve(self, repo: str, revision: str, path: Path, commit: str | None = None) -> str:
        """``path`` as ``repo``'s file of its name at ``revision`` (a commit hash, or a branch
        such as ``main`` whose commit is ``commit``, default a hash of the repository's name).
        Returns the file's sha256."""
        digest = self._digests.get(path) or sha256(path)
        self._digests[path] = digest
        commit = commit or (revision if len(revision) == 40 else
                            hashlib.sha1(repo.encode()).hexdigest())
        self.files[f"/{repo}/resolve/{revision}/{path.name}"] = _Served(
            path, path.stat().st_size, f'"{digest}"', commit)
        return digest

    def file_requests(self, method: str | None = None) -> list[tuple[str, str] | str]:
        """The requests of files so far (``/resolve/`` addresses: not huggingface_hub's own
        others, such as its daily fetch of ``/api/agent-harnesses``): (method, path), or the
        paths of those of ``method``."""
        asked = [(m, path) for m, path in self.requests if "/resolve/" in path]
        return asked if method is None else [path for m, path in asked if m == method]


def _handler(hub: LocalHub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, with_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            served = hub.files.get(self.path)
            if served is None:
                # As the Hub says what is missing: the repository, or a file of it.
                repo = self.path.split("/resolve/")[0]
                known = any(path.startswith(f"{repo}/resolve/") for path in hub.files)
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound" if known else "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(served.size))
            self.send_header("X-Repo-Commit", served.commit)
            self.send_header("ETag", served.etag)
            self.end_headers()
            if with_body:
                with open(served.path, "rb") as file:
                    shutil.copyfileobj(file, self.wfile, 1 << 20)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(True)

        def log_message(self, *args) -> None:
            pass

    return Handler


@contextmanager
def running_hub() -> Iterator[tuple[LocalHub, Callable[[], None]]]:
    """A ``LocalHub`` served on a free local port for the block, and a function that stops it
    early (its port closed: a connection is refused)."""
    hub = LocalHub()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    try:
        yield hub, stop
    finally:
        stop()
