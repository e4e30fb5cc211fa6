"""The worker's log handler keeps every line whole when many threads log at once."""

from __future__ import annotations

import logging
import re
import sys
import threading
from pathlib import Path

from sample.runtime import LOG_FORMAT, LineStreamHandler

THREADS = 8
RECORDS = 3000


def test_lines_stay_whole_across_threads(tmp_path: Path) -> None:
    # Switch threads as often as possible, so that a handler that split a record
    # into two writes would show mixed lines.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        lines = log_from_threads(tmp_path / "log.txt")
    finally:
        sys.setswitchinterval(previous)

    pattern = re.compile(r"^\S+ \S+ INFO lines: thread (\d) record (\d+) (x*)$")
    seen = set()
    for line in lines:
        match = pattern.match(line)
        assert match is not None, f"mixed or broken line: {line[:120]!r}"
        assert len(match[3]) == int(match[2]) % 200, line[:120]
        seen.add((int(match[1]), int(match[2])))
    assert len(lines) == THREADS * RECORDS
    assert len(seen) == THREADS * RECORDS


def log_from_threads(path: Path) -> list[str]:
    # Line-buffered like sys.stderr, so every record reaches the file with its own write.
    with open(path, "w", buffering=1) as stream:
        handler = LineStreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger = logging.Logger("lines")
        logger.addHandler(handler)

        def log_many(number: int) -> None:
            for index in range(RECORDS):
                logger.info("thread %d record %d %s", number, index, "x" * (index % 200))

        threads = [threading.Thread(target=log_many, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return path.read_text().splitlines()
