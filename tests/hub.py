"""A local stand-in for the Hugging Face Hub (the real one is unreachable here), for `theo pull`
driven by the real `huggingface_hub` client through `HF_ENDPOINT`.

It serves model repos whose branches point at commits of files held in memory, with the HTTP
endpoints the client uses to pull: model info at a revision, the recursive tree of a commit,
and `resolve/<commit>/<file>` (HEAD and GET). Each request is recorded, so tests see which
commit the client fetched.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

LFS_THRESHOLD = 10_000
"""Files at least this large are served as LFS files (sha256 ETag), as the hub does."""


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(
        b"blob %d\0" % len(data) + data, usedforsecurity=False
    ).hexdigest()  # git blob id (sha1 by definition)


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def push(self, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit `files` (the whole tree) on `branch`; returns the commit id."""
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(str(len(self.commits)).encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name])
        commit = digest.hexdigest()
        self.commits[commit] = dict(files)
        self.refs[branch] = commit
        return commit

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass
class Hub:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def repo(self, repo_id: str) -> Repo:
        return self.repos.setdefault(repo_id, Repo())


INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def _handler(hub: Hub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _missing(self, what: str, code: str) -> None:
            self._json(404, {"error": what}, {"X-Error-Code": code, "X-Error-Message": what})

        def _route(self) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            if match := TREE.match(path):
                self._tree(match["repo"], match["rev"], match["path"] or "")
            elif match := INFO.match(path):
                self._info(match["repo"], match["rev"] or "main")
            elif match := RESOLVE.match(path):
                self._file(match["repo"], match["rev"], match["path"])
            else:
                self._missing(f"no route {path}", "EntryNotFound")

        def _commit(self, repo_id: str, revision: str) -> tuple[Repo, str] | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._missing(f"Repository {repo_id} not found", "RepoNotFound")
                return None
            commit = repo.resolve(revision)
            if commit is None:
                self._missing(f"Invalid rev id: {revision}", "RevisionNotFound")
                return None
            return repo, commit

        def _info(self, repo_id: str, revision: str) -> None:
            found = self._commit(repo_id, revision)
            if found is not None:
                repo, commit = found
                siblings = [{"rfilename": name} for name in sorted(repo.commits[commit])]
                self._json(200, {"id": repo_id, "sha": commit, "siblings": siblings})

        def _tree(self, repo_id: str, revision: str, prefix: str) -> None:
            found = self._commit(repo_id, revision)
            if found is None:
                return
            repo, commit = found
            entries = []
            for name, data in sorted(repo.commits[commit].items()):
                if not name.startswith(prefix):
                    continue
                entry: dict[str, object] = {
                    "type": "file",
                    "path": name,
                    "size": len(data),
                    "oid": git_blob_id(data),
                }
                if len(data) >= LFS_THRESHOLD:
                    sha = hashlib.sha256(data).hexdigest()
                    entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
                entries.append(entry)
            self._json(200, entries)

        def _file(self, repo_id: str, revision: str, name: str) -> None:
            found = self._commit(repo_id, revision)
            if found is None:
                return
            repo, commit = found
            data = repo.commits[commit].get(name)
            if data is None:
                self._missing(f"{name} not found", "EntryNotFound")
                return
            lfs = len(data) >= LFS_THRESHOLD
            etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Repo-Commit", commit)
            if lfs:
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        do_GET = _route
        do_HEAD = _route

    return Handler


@contextmanager
def serve_hub(hub: Hub) -> Iterator[Hub]:
    """Serve `hub` on a free loopback port; `hub.url` is its `HF_ENDPOINT`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
