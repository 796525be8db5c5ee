"""``Managed``: the context-manager protocol for things with ``start()`` and an idempotent ``stop()``.

``with thing:`` starts it and always stops it: on normal exit, on exceptions, and also when
``start()`` itself fails half way (so a partly built emulation or a spawned controller is never
left behind). ``stop()`` must therefore cope with a partial start.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def sigint_deferred(on_signal: Callable[[], None] | None = None) -> Iterator[None]:
    """Run a tear-down to its end even when Ctrl-C arrives: SIGINT during the block only calls
    ``on_signal``; once the block is done (and the old handler is back) a KeyboardInterrupt is
    raised, unless the block itself raised. Outside the main thread signals cannot be handled:
    the block runs as it is."""
    interrupted: list[bool] = []
    restore = None
    if threading.current_thread() is threading.main_thread():
        def _defer(_sig: int, _frame: Any) -> None:
            interrupted.append(True)
            if on_signal is not None:
                on_signal()
        restore = signal.signal(signal.SIGINT, _defer)
    try:
        yield
    finally:
        if restore is not None:
            signal.signal(signal.SIGINT, restore)
    if interrupted:
        raise KeyboardInterrupt


class Managed:
    def start(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
