"""A one-line progress bar on stderr, for long replays and imports.

Silent when the stream is not a terminal: a log file or a pipe would get one carriage-return
line per redraw.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class Progress:
    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, width: int = 30
    ) -> None:
        self._bar = tqdm(
            total=max(total, 0) or None,  # None: no bar, just the count
            desc=label,
            file=stream or sys.stderr,
            disable=None,  # tqdm's "only on a TTY"
            mininterval=0.2,
            unit="",
            bar_format=f"{{l_bar}}{{bar:{width}}}{{r_bar}}" if total > 0 else None,
        )

    def advance(self, count: int) -> None:
        self._bar.update(count)

    def close(self) -> None:
        self._bar.close()
