"""The command-line tools' one entry wrapper: an error of the project ends a tool with one line, not a traceback.

``@tool("python -m flownet_ros.evaluation.evaluate")`` on a tool's ``main(argv) -> int``:

* an exception whose class is defined in this package (``FlowFileError``, ``BagError``, ``CheckpointError``,
  ``ConfigError``, ...: their messages name the file and what is wrong) or an ``OSError`` about a file
  prints ``<prog>: error: <message>`` on stderr and returns 2; any other exception is a bug and keeps its
  traceback;
* SIGTERM is handled like Ctrl-C (raises :class:`Terminated`, a ``KeyboardInterrupt``), so ``finally``
  blocks run (bags are closed, child processes stopped); an interrupt returns 128 + the signal number.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence

PACKAGE = __name__.split(".")[0]
EXIT_ERROR = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like the KeyboardInterrupt of SIGINT."""

    signum = signal.SIGTERM


def is_user_error(exc: BaseException) -> bool:
    """True for the errors a user causes (bad file, bad option): the package's own exception classes, and
    OSErrors that name a file (missing, a directory, no permission)."""
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return True  # a path the user gave (the project's messages name it; OSError's own carry filename)
    if isinstance(exc, OSError):
        return exc.filename is not None
    return isinstance(exc, Exception) and any(
        cls.__module__.split(".")[0] == PACKAGE for cls in type(exc).__mro__[:-1])


def error_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        if isinstance(exc, IsADirectoryError):
            return f"{exc.filename}: is a directory, not a file"
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


def user_path(text: str) -> Path:
    """Argparse ``type`` for paths: ``~`` expanded even when the shell did not (quoted, or from make)."""
    return Path(os.path.expanduser(text))


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def tool(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a tool's ``main(argv=None) -> int`` (see the module docstring)."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Optional[Sequence[str]] = None, *args, **kwargs) -> int:
            in_main = threading.current_thread() is threading.main_thread()
            old = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
            try:
                return main(argv, *args, **kwargs)
            except KeyboardInterrupt as exc:
                signum = int(getattr(exc, "signum", signal.SIGINT))
                print(f"{prog}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
                return 128 + signum
            except Exception as exc:  # noqa: BLE001 - sorted into user errors (one line) and bugs (re-raised)
                if not is_user_error(exc):
                    raise
                print(f"{prog}: error: {error_line(exc)}", file=sys.stderr)
                return EXIT_ERROR
            finally:
                if in_main:
                    signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)

        return run

    return wrap
