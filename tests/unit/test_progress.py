"""The progress bar of replays and imports: on a terminal only."""

from __future__ import annotations

import io

from infra.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_it_draws_one_line_with_the_label_and_the_count():
    stream = Terminal()
    progress = Progress(10, "rebuild incidents", stream)
    progress.advance(4)
    progress.advance(6)
    progress.close()
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("rebuild incidents: 100%") and "10/10" in last
    assert last.endswith("/s]\n") and last.count("\n") == 1


def test_the_bar_has_the_width_asked_for():
    stream = Terminal()
    progress = Progress(2, "import", stream, width=12)
    progress.advance(2)
    progress.close()
    assert "|" + "#" * 12 + "|" in stream.getvalue()


def test_an_unknown_total_shows_the_count_alone():
    stream = Terminal()
    progress = Progress(0, "import", stream)
    progress.advance(7)
    progress.close()
    assert "import: 7 " in stream.getvalue() and "%" not in stream.getvalue()


def test_a_pipe_or_a_log_file_gets_nothing():
    stream = io.StringIO()
    progress = Progress(10, "import", stream)
    progress.advance(10)
    progress.close()
    assert stream.getvalue() == ""
