"""The dynamic batcher's policy, stated once:

- A batch goes out when the server is free and either `max_batch` requests are waiting, or the
  oldest has waited `max_wait_s` (max_wait_s 0: whatever is waiting goes at once: greedy).
- It takes the waiting requests oldest first, up to `max_batch`, at most one per stream: a
  stream's next step needs the state its previous step returns, so a stream's later request
  waits for the next batch, in order.
- Nothing is dropped or reordered within a stream; a request never waits for a batch to fill
  longer than max_wait_s after it is the oldest."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class BatchPolicy:
    max_batch: int
    max_wait_s: float

    def __post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or self.max_batch < 1:
            raise ValueError(f"max_batch = {self.max_batch!r}: allowed an integer >= 1")
        if not self.max_wait_s >= 0:
            raise ValueError(f"max_wait_s = {self.max_wait_s!r}: allowed a number >= 0")

    def due(self, waiting: int, oldest_wait_s: float) -> bool:
        """Whether a batch goes out now (the server being free)."""
        return waiting > 0 and (waiting >= self.max_batch or oldest_wait_s >= self.max_wait_s)

    def wait_left(self, oldest_wait_s: float) -> float:
        """How long the oldest request may still wait for the batch to fill."""
        return max(0.0, self.max_wait_s - oldest_wait_s)

    def take(self, waiting: Sequence[int], stream_of) -> tuple[list[int], list[int]]:
        """(the batch, what stays waiting), both in arrival order: oldest first, at most one
        request per stream, at most max_batch. `waiting` holds request indices in arrival
        order; stream_of[request] is its stream."""
        batch: list[int] = []
        rest: list[int] = []
        streams: set[int] = set()
        for position, request in enumerate(waiting):
            if len(batch) == self.max_batch:
                return batch, rest + list(waiting[position:])
            stream = stream_of[request]
            if stream in streams:
                rest.append(request)
            else:
                batch.append(request)
                streams.add(stream)
        return batch, rest
