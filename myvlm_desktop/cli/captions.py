"""Caption and question commands: caption PATH | caption --all, ask PATH "QUESTION", ask --library "QUESTION".

`caption` and `ask PATH` need a VLM: without its weights they print the model manager's message and exit 1.
`ask --library` answers from the database and works offline (SmolLM2 phrases it, or a template).
"""

from __future__ import annotations

import os
import sys

from ..imaging import ImageError
from ..pipeline.settings import CHOICES
from .common import CommandError, StderrProgress, emit, library


def register(sub) -> None:
    p = sub.add_parser("caption", help="a personalized caption for a photo (PATH), or for every photo (--all)")
    p.add_argument("path", nargs="?", help="a photo file (in the library or not)")
    p.add_argument("--all", action="store_true", help="caption every library photo that needs it")
    _vlm_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=caption)

    p = sub.add_parser("ask", help='ask about a photo: ask PATH "QUESTION"; about the library: ask --library "QUESTION"')
    p.add_argument("words", nargs="+", metavar="PATH QUESTION", help="the photo and the question (or only the "
                   "question with --library)")
    p.add_argument("--library", action="store_true", help="a question about the whole library, answered from it")
    p.add_argument("--no-llm", action="store_true", help="library answers: use the template, not SmolLM2")
    _vlm_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=ask)


def _vlm_options(p) -> None:
    p.add_argument("--backend", choices=CHOICES["vlm_backend"], help="the VLM (default: the setting)")
    p.add_argument("--model", help="a model name or a local model folder (default: the setting)")
    p.add_argument("--device", choices=CHOICES["device"], help="where to run it (default: the setting)")


def _backend(args, lib):
    from ..pipeline.questions import vlm_backend

    return vlm_backend(lib, backend=args.backend, model=args.model, device=args.device)


def _stream(args):
    """Words as they are generated, for a person watching; JSON output waits for the whole answer."""
    if args.json or not sys.stdout.isatty():
        return None
    return lambda text: print(text, end="", flush=True)


def caption(args) -> None:
    from ..pipeline.captions import caption_library, caption_photo

    if bool(args.path) == bool(args.all):
        raise CommandError("give a photo PATH or --all")
    if args.path and not os.path.exists(args.path):
        raise CommandError(f"no such file: {args.path}")
    lib = library(args)
    backend = _backend(args, lib)
    if args.all:
        counts = caption_library(lib, backend, control=StderrProgress())
        emit(counts, args.json, ", ".join(f"{k} {v}" for k, v in counts.items()))
        return
    try:
        result = caption_photo(lib, args.path, backend, on_token=_stream(args))
    except ImageError as exc:
        raise CommandError(f"{args.path}: {exc.reason}") from None
    emit({k: result[k] for k in ("caption", "concepts", "backend")}, args.json, _plain_text(result["caption"], args))


def ask(args) -> None:
    if args.library:
        _ask_library(args, library(args), " ".join(args.words))
        return
    if len(args.words) < 2:
        raise CommandError('ask PATH "QUESTION" (or ask --library "QUESTION")')
    from ..pipeline.questions import ask_photo

    path, question = args.words[0], " ".join(args.words[1:])
    try:
        result = ask_photo(library(args), path, question, on_token=_stream(args), backend=args.backend,
                           model=args.model, device=args.device)
    except ImageError as exc:
        raise CommandError(f"{path}: {exc.reason}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    emit({k: result[k] for k in ("answer", "concepts", "backend")}, args.json, _plain_text(result["answer"], args))


def _ask_library(args, lib, question: str) -> None:
    from ..pipeline.questions import ask_library

    try:
        result = ask_library(lib, question, use_model=not args.no_llm)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    facts = "\n".join(f"  - {f['text']}" for f in result["facts"])
    text = f"{result['answer']}\n\nfacts used ({result['phrased_by']}):\n{facts}"
    emit({k: result[k] for k in ("answer", "facts", "phrased_by")}, args.json, text)


def _plain_text(text: str, args) -> str:
    """Streamed text is already on screen: end the line instead of printing it twice."""
    return "" if _stream(args) is not None else text
