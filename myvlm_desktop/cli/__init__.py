"""`myvlm`: the app without a window. Every command takes --data-dir (else $MYVLM_DATA_DIR, else the
platform's data folder). Each area registers its commands from its own module here.

Exit codes: 0 done, 1 a model or job failed, 2 bad input (a malformed query, a missing folder), 141 the
reader of the output went away (`myvlm errors --json | head`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ..models.errors import ModelUnavailable
from ..storage import DiskFull
from . import captions, common, concepts, durability, interop, library, people, perception, vlm

AREAS = (library, perception, people, concepts, vlm, captions, durability, interop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="myvlm", description="MyVLM Desktop, headless.")
    parser.add_argument("--data-dir", help="the app's data folder (default: $MYVLM_DATA_DIR or the platform's)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in AREAS:
        area.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable = args.handler
    try:
        common.check_data_dir(args.data_dir)
        result = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        # `myvlm ... | head -1`: the reader has what it wanted. Exit as a Unix tool killed by SIGPIPE does,
        # with nothing on stderr; stdout goes to devnull so that Python's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except ModelUnavailable as exc:
        print(f"myvlm: {exc}", file=sys.stderr)
        return 1
    except DiskFull as exc:
        print(f"myvlm: {exc}", file=sys.stderr)
        return 1
    except common.CommandError as exc:
        print(f"myvlm: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("myvlm: interrupted", file=sys.stderr)
        return 130
    finally:
        common.close_open_library()
    if isinstance(result, int):
        return result
    return 0



if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
