"""`theo pull`: download a model and write its manifest, recording where it came from.

A Hugging Face pull resolves the requested revision (a branch, a tag or a 40-hex commit; the
repo's default branch when none is given) to one commit, downloads exactly that commit, and
writes `source: {uri, revision, commit, sha256}` into the model's `theo.yaml`: what was asked
for, which commit was pulled and the sha256 of every file. Pin a commit and the weights never
follow the repository's later pushes. A URL pull (a model tarball) records the archive's sha256.

`ensure_model` is the same pull run by an engine replica whose model directory is missing (a
pod with its own storage that started before the model was added), from the manifest's
`source`, under the lock the chart's init container takes.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engines.bundled import sha256_file, whisper_manifest
from engines.manifest import ModelManifest, ModelSource, load_manifest, write_manifest

ALIASES: dict[str, str] = {
    name: f"Systran/faster-whisper-{name}"
    for name in (
        "tiny",
        "tiny.en",
        "base",
        "base.en",
        "small",
        "small.en",
        "medium",
        "medium.en",
        "large-v1",
        "large-v2",
        "large-v3",
    )
}
ALIASES["large-v3-turbo"] = "mobiuslabsgmbh/faster-whisper-large-v3-turbo"
ALIASES["distil-large-v3"] = "Systran/faster-distil-whisper-large-v3"

WANTED_FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor*.json"]
COMMIT = re.compile(r"^[0-9a-f]{40}$")
LOCK_FILE = ".theo-pull.lock"
"""In the models directory; the chart's init container takes the same `flock`."""


class PullError(RuntimeError):
    pass


def resolve_repo(name: str) -> str:
    """An alias (`base`, `whisper-base`) or an `owner/repo` id."""
    key = name.removeprefix("whisper-")
    if key in ALIASES:
        return ALIASES[key]
    if "/" in name:
        return name
    raise PullError(
        f"unknown model {name!r}: use a Hugging Face repo id (owner/name) or one of "
        + ", ".join(sorted(ALIASES))
    )


def default_name(repo: str) -> str:
    tail = repo.split("/")[-1].removeprefix("faster-whisper-").removeprefix("faster-")
    return tail if tail.startswith("whisper") else f"whisper-{tail}"


def file_digests(directory: Path, root: Path) -> dict[str, str]:
    """sha256 of every regular file below `directory` (hidden ones such as the hub client's
    `.cache/` excluded), keyed by path relative to `root`."""
    return {
        str(path.relative_to(root)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)
    }


def with_source(manifest_path: Path, source: ModelSource) -> Path:
    manifest = load_manifest(manifest_path).model_copy(update={"source": source})
    return write_manifest(manifest, manifest_path.parent)


def pull_archive(url: str, models_dir: Path, *, model_name: str | None = None) -> Path:
    """Download a model tarball (a WeNet export, say) with a progress bar and install it."""
    import tempfile

    import httpx
    from tqdm import tqdm

    from engines.install import InstallError, add_model_archive

    with tempfile.TemporaryDirectory(prefix="theo-pull-") as tmp:
        archive = Path(tmp) / "model.tar"
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=30) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length", 0)) or None
                with (
                    archive.open("wb") as out,
                    tqdm(
                        total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1]
                    ) as bar,
                ):
                    for block in response.iter_bytes(1 << 20):
                        out.write(block)
                        bar.update(len(block))
        except httpx.HTTPError as exc:
            raise PullError(f"cannot download {url}: {exc}") from None
        digest = {url.rsplit("/", 1)[-1]: sha256_file(archive)}
        try:
            path = add_model_archive(archive, models_dir, name=model_name)
        except InstallError as exc:
            raise PullError(str(exc)) from None
    return with_source(path, ModelSource(uri=url, sha256=digest))


def resolve_commit(repo: str, revision: str | None) -> str:
    """The commit `revision` (None: the default branch) of `repo` points at, on the hub."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo, revision=revision, timeout=10)
    except RevisionNotFoundError:
        raise PullError(f"{repo} has no revision {revision!r}") from None
    except HfHubHTTPError as exc:
        raise PullError(f"cannot fetch {repo} from Hugging Face: {exc}") from None
    except Exception as exc:  # connection errors differ by HTTP backend (httpx, requests)
        raise PullError(
            f"cannot reach Hugging Face to download {repo} ({exc}); check your network or "
            "install a model directory offline with its theo.yaml"
        ) from None
    if not info.sha:
        raise PullError(f"the hub named no commit for {repo} at {revision or 'its default branch'}")
    if revision is not None and COMMIT.fullmatch(revision) and info.sha != revision:
        raise PullError(f"{repo}: asked for commit {revision}, the hub answered {info.sha}")
    return info.sha


def pull(
    name: str,
    models_dir: Path,
    *,
    model_name: str | None = None,
    revision: str | None = None,
) -> Path:
    """Download into `<models_dir>/<model_name>/model` (progress bars on stderr).

    An http(s) URL is a model tarball (e.g. a WeNet export); anything else names a
    CTranslate2 Whisper model on Hugging Face, pulled at `revision`."""
    if name.startswith(("http://", "https://")):
        if revision:
            raise PullError("--revision applies to Hugging Face repos, not to a tarball URL")
        return pull_archive(name, models_dir, model_name=model_name)
    from huggingface_hub import snapshot_download

    repo = resolve_repo(name)
    commit = resolve_commit(repo, revision)
    target = models_dir / (model_name or default_name(repo))
    weights = target / "model"
    snapshot_download(repo, revision=commit, local_dir=weights, allow_patterns=WANTED_FILES)
    source = ModelSource(
        uri=name, revision=revision, commit=commit, sha256=file_digests(weights, target)
    )
    manifest = whisper_manifest(
        target.name,
        Path("model"),
        multilingual=not repo.endswith(".en"),
        description=f"Whisper from huggingface.co/{repo}",
        memory_mb=0,
    )
    return write_manifest(manifest.model_copy(update={"source": source}), target)


@contextmanager
def pull_lock(models_dir: Path) -> Iterator[None]:
    """The models directory's pull lock (`flock`), shared with the chart's init container, so
    pods (and replicas) sharing a volume download a model once."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with (models_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_model(manifest: ModelManifest) -> Path | None:
    """Pull a served model whose weights are missing, from its manifest's `source` (at the
    pinned revision); the manifest's path is returned, or None when nothing was pulled."""
    if manifest.source is None or manifest.directory is None or manifest.model_path().exists():
        return None
    directory = manifest.directory
    with pull_lock(directory.parent):
        if manifest.model_path().exists():
            return None  # another replica pulled it while this one waited
        return pull(
            manifest.source.uri,
            directory.parent,
            model_name=directory.name,
            revision=manifest.source.revision,
        )
