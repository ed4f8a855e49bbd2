"""Bus that queues messages in-process; the local pipeline drains it stage by stage."""

from __future__ import annotations

from collections import deque

from common.schemas import StageMessage


class InlineBus:
    def __init__(self) -> None:
        self._queue: deque[StageMessage] = deque()

    def publish(self, message: StageMessage) -> None:
        self._queue.append(message)

    def pop(self) -> StageMessage | None:
        return self._queue.popleft() if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)
