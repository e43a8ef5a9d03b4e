"""`python -m engines.wenet.testing DIR [--size tiny|standard] [--playback TEXT] ...`"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engines.wenet.testing.audio import load_audio
from engines.wenet.testing.generate import DEFAULT_SPEECH_THRESHOLD, generate_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m engines.wenet.testing",
        description="Write a random-weight WeNet-format model (final.zip, units.txt, theo.yaml).",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--size", choices=["tiny", "standard"], default="tiny")
    parser.add_argument("--playback", help="text to play back; {primary|alternative} words")
    parser.add_argument("--frames-per-token", type=int, default=4)
    parser.add_argument("--fit-audio", type=Path, help="spread the text over this file's speech")
    parser.add_argument("--speech-threshold", type=float, default=DEFAULT_SPEECH_THRESHOLD)
    parser.add_argument("--subsampling-rate", type=int, choices=[4, 6], default=4)
    parser.add_argument("--quantize", action="store_true", help="also write final_quant.zip")
    parser.add_argument(
        "--onnx",
        type=int,
        nargs=2,
        metavar=("CHUNK", "LEFT_CHUNKS"),
        help="also write WeNet's ONNX export (encoder/ctc/decoder.onnx)",
    )
    parser.add_argument("--name")
    parser.add_argument("--language", default="en")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--engine-config", type=json.loads, default={}, help="JSON merged into engine_config"
    )
    args = parser.parse_args(argv)
    generated = generate_model(
        args.directory,
        size=args.size,
        playback=args.playback,
        subsampling_rate=args.subsampling_rate,
        frames_per_token=args.frames_per_token,
        fit_audio=load_audio(args.fit_audio) if args.fit_audio else None,
        speech_threshold=args.speech_threshold,
        quantize=args.quantize,
        name=args.name,
        language=args.language,
        seed=args.seed,
        config_overrides=args.engine_config,
        onnx=tuple(args.onnx) if args.onnx else None,
    )
    print(
        json.dumps(
            {
                "directory": str(generated.directory),
                "name": generated.manifest.name,
                "units": len(generated.units),
                "transcript": generated.transcript,
                "frames_per_token": generated.frames_per_token,
            }
        )
    )


if __name__ == "__main__":
    main()
