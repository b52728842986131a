"""What a replica knows about reaching its job store, for the job engine's outage rules."""

from __future__ import annotations


class StoreContact:
    """Since when this replica has reached the job store without a failure, and how long to wait
    before trying again after one.

    The reaper reads `steady_for`: a lease that ran out says its worker stopped only if the worker
    could have renewed it, that is, if the store was reachable for a whole lease. A store outage
    stops every replica's renewals at once, so after one a lease counts again only from the time
    the store is back; this replica knows that time only by reaching the store itself.
    """

    def __init__(self, first_retry_seconds: float, longest_retry_seconds: float) -> None:
        self._since: float | None = None
        self._first_retry = first_retry_seconds
        self._longest_retry = max(first_retry_seconds, longest_retry_seconds)
        self.retry_seconds = first_retry_seconds

    @property
    def reachable(self) -> bool:
        return self._since is not None

    def reached(self, now: float) -> None:
        if self._since is None:
            self._since = now
        self.retry_seconds = self._first_retry

    def lost(self) -> bool:
        """Record a failed call; True when it is the first since the store was last reached."""
        was = self._since is not None
        self._since = None
        return was

    def back_off(self) -> float:
        """The wait before the next attempt: doubled after each failed round, up to a bound."""
        self.retry_seconds = min(self.retry_seconds * 2, self._longest_retry)
        return self.retry_seconds

    def steady_for(self, now: float) -> float:
        """Seconds of uninterrupted contact up to `now` (0 while unreachable)."""
        return 0.0 if self._since is None else max(0.0, now - self._since)
