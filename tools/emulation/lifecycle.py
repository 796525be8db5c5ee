"""``Managed``: the context-manager protocol for things with ``start()`` and an idempotent ``stop()``.

``with thing:`` starts it and always stops it: on normal exit, on exceptions, and also when
``start()`` itself fails half way (so a partly built emulation or a spawned controller is never
left behind). ``stop()`` must therefore cope with a partial start.
"""

from __future__ import annotations

from typing import Any


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
