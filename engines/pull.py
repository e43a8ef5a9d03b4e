"""`theo pull`: download a CTranslate2 Whisper model from Hugging Face and write its manifest."""

from __future__ import annotations

from pathlib import Path

from engines.bundled import whisper_manifest
from engines.manifest import write_manifest

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
        try:
            return add_model_archive(archive, models_dir, name=model_name)
        except InstallError as exc:
            raise PullError(str(exc)) from None


def pull(name: str, models_dir: Path, *, model_name: str | None = None) -> Path:
    """Download into `<models_dir>/<model_name>/model` (progress bars on stderr).

    An http(s) URL is a model tarball (e.g. a WeNet export); anything else names a
    CTranslate2 Whisper model on Hugging Face."""
    if name.startswith(("http://", "https://")):
        return pull_archive(name, models_dir, model_name=model_name)
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    repo = resolve_repo(name)
    try:
        HfApi().model_info(repo, timeout=10)
    except HfHubHTTPError as exc:
        raise PullError(f"cannot fetch {repo} from Hugging Face: {exc}") from None
    except Exception as exc:  # connection errors differ by HTTP backend (httpx, requests)
        raise PullError(
            f"cannot reach Hugging Face to download {repo} ({exc}); check your network or "
            "install a model directory offline with its theo.yaml"
        ) from None
    target = models_dir / (model_name or default_name(repo))
    snapshot_download(repo, local_dir=target / "model", allow_patterns=WANTED_FILES)
    manifest = whisper_manifest(
        target.name,
        Path("model"),
        multilingual=not repo.endswith(".en"),
        description=f"Whisper from huggingface.co/{repo}",
        memory_mb=0,
    )
    return write_manifest(manifest, target)
