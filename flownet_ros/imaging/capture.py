"""What image libraries print on stderr during one decode, captured instead of printed.

libjpeg and libpng report corrupt data through ``fprintf(stderr)`` (OpenCV's log level does not reach
them): at the rate of an attacker's messages, past any throttling (1,874 of 1,966 log lines of a fuzzed
node). :func:`captured_stderr` points file descriptor 2 at a memory file for the duration of a decode and
hands the decoder's lines to the caller, which counts them and logs them throttled. The redirection is
process-wide: lines other threads write meanwhile are captured too; those in ROS's log format
(``[SEVERITY] [...``) are written to the real stderr afterwards, any other line is taken as the decoder's.
Cost: two ``dup2`` and a memory file per decode (microseconds next to the decode itself).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator, List

MAX_CAPTURED = 1 << 20  # bytes read back per decode; libjpeg prints one warning per image, libpng a few
_ROS_LINE = re.compile(rb"^\[(DEBUG|INFO|WARN|ERROR|FATAL)\] ")
_LOCK = threading.Lock()  # one redirection at a time


def _memory_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("flownet-decoder-stderr", os.MFD_CLOEXEC)
    fd, path = tempfile.mkstemp(prefix="flownet-decoder-")
    os.unlink(path)
    return fd


@contextmanager
def captured_stderr(messages: List[str]) -> Iterator[None]:
    """Within the block, what is written to fd 2 is captured; afterwards ROS log lines go to the real
    stderr and every other non-empty line is appended to ``messages`` (stripped)."""
    with _LOCK:
        if sys.stderr is not None:
            sys.stderr.flush()
        mem, saved = _memory_file(), os.dup(2)
        os.dup2(mem, 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            size = min(os.lseek(mem, 0, os.SEEK_END), MAX_CAPTURED)
            text = os.pread(mem, size, 0) if size else b""
            os.close(mem)
            for line in text.splitlines(keepends=True):
                if _ROS_LINE.match(line):
                    os.write(2, line)
                elif line.strip():
                    messages.append(line.decode("utf-8", "replace").strip())
