"""Latest-frame queue and the inference thread that drains it.

The ROS callback only ``put``s (never blocks: a single slot, replaced if still full); the worker
thread ``get``s and runs the slow part. When frames arrive faster than the worker finishes, each
``put`` onto a full slot drops the frame waiting there (counted), so the worker always starts on
the newest frame and the delay never grows beyond one processing time plus one frame interval.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class LatestQueue:
    """Thread-safe single-slot queue; ``put`` replaces a waiting item instead of blocking."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self._closed = False

    def put(self, item: Any) -> Optional[Any]:
        """Store ``item``; return the stale item it replaced (dropped), else None."""
        with self._cond:
            stale = self._item if self._full else None
            self._item, self._full = item, True
            self._cond.notify()
            return stale

    def get(self, timeout: Optional[float] = None) -> Optional[Any]:
        """Take the waiting item; None after ``timeout`` s or when closed."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait(timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def __len__(self) -> int:
        with self._cond:
            return int(self._full)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class Worker(threading.Thread):
    """Calls ``startup()`` once, then ``handle(item)`` for every item taken from ``queue`` until ``stop()``.

    An exception from ``startup`` or ``handle`` goes to ``on_error(exc, item)`` (item None for startup) and
    the loop goes on.
    """

    def __init__(self, queue: LatestQueue, handle: Callable[[Any], None],
                 on_error: Callable[[BaseException, Any], None], name: str = "flownet-worker",
                 startup: Optional[Callable[[], None]] = None):
        super().__init__(name=name, daemon=True)
        self.queue = queue
        self._handle = handle
        self._on_error = on_error
        self._startup = startup

    def run(self) -> None:
        if self._startup is not None:  # one-time work before the first item (items wait in the queue)
            try:
                self._startup()
            except Exception as exc:
                self._on_error(exc, None)
        while not self.queue.closed:
            item = self.queue.get(timeout=0.2)
            if item is None:
                continue
            try:
                self._handle(item)
            except Exception as exc:  # keep serving frames; the node logs and counts it
                self._on_error(exc, item)

    def stop(self, timeout: Optional[float] = None) -> None:
        """Close the queue and wait for the frame in progress (default: however long it takes, so the
        worker never publishes on a node that is being destroyed)."""
        self.queue.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
