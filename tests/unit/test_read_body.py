"""The body buffer grows with what arrives, never to the declared length up front: a slow client
declaring a huge body must not cost its declared size in memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator

import pytest

from domain.errors import ValidationFailed
from entrypoints.http.bodies import read_body


class _Request:
    def __init__(self, declared: int, chunks: list[bytes]) -> None:
        self.headers = {"content-length": str(declared)}
        self._chunks = chunks

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


async def test_memory_follows_the_bytes_received_not_the_declared_length() -> None:
    chunks = [b"a" * 1000, b"b" * 1000, b"c" * 1000]
    tracemalloc.start()
    try:
        body = await read_body(_Request(1 << 30, chunks))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bytes(body) == b"".join(chunks)
    assert peak < 1 << 20, f"peak {peak} bytes for 3 kB received"


async def test_a_body_longer_than_declared_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        await read_body(_Request(1500, [b"a" * 1000, b"b" * 1000]))  # type: ignore[arg-type]
