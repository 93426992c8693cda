"""The `kokoro-build` command line."""
from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_config


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    shapes = sum(len(spec.sizes) for stage in config.stages.values() for spec in stage.shapes.values())
    print(f"{args.file}: ok ({config.name}: {len(config.stages)} stage(s), {shapes} shape(s), "
          f"source {config.model.source.kind})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kokoro-build", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check a pipeline file; exit 1 with file:line: field: message")
    validate.add_argument("file", nargs="?", default="pipeline.yaml")
    validate.set_defaults(run=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
