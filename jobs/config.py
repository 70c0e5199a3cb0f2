"""python -m jobs.config [CONFIG] [dotted.key=value ...] | --reference [--out FILE]: the resolved config, or the reference of every key.

With CONFIG (default configs/quickstart.yaml) and overrides, prints the config as jobs.train would
run it, every default filled in, or the one-line error naming the key. With --reference, writes the
reference of every key of every section (each task's section too) from the schema's own types,
defaults and descriptions: docs/config_reference.md is made this way, and a test keeps it current.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.config.errors import ConfigError
from core.config.loading import load_config, to_yaml
from core.config.reference import reference
from jobs._cli import DEFAULT_CONFIG, USAGE_ERROR


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.reference:
        text = reference()
        if args.out:
            args.out.write_text(text)
            print(f"written: {args.out}")
        else:
            print(text, end="")
        return 0
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    print(to_yaml(config), end="")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.config", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="experiment YAML (default: configs/quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    parser.add_argument("--reference", action="store_true", help="the reference of every key, as markdown")
    parser.add_argument("--out", type=Path, help="with --reference: write it to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
