"""The engine lease: one row saying which engine dispatches for the database."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from core.models import EngineLease
from core.procfs import HOST
from core.store import LEASE_NAME, Store, lease_in_force


class Lease:
    """Takes, renews and gives back the lease for the engine ``owner``."""

    def __init__(self, store: Store, owner: str, ttl: float, enabled: bool = True) -> None:
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.enabled = enabled
        self.held = False
        self._last_renew = 0.0
        self._renew_by: datetime | None = None

    def renew(self) -> bool:
        """Take the lease when it is free, renew it when ours; True when it was just taken
        (the engine then looks for jobs to recover at once)."""
        if not self.enabled:
            return False
        mono = time.monotonic()
        now = self.store.now()
        # Renew by both clocks: the injected one may jump past our expiry (a paused or
        # stalled engine), and then another engine may already hold the lease.
        fresh = self._renew_by is not None and now < self._renew_by
        if self.held and fresh and mono - self._last_renew < self.ttl / 5:
            return False
        if not self.held:
            with self.store.reader() as s:  # standing by costs a read, not a write lock
                lease = s.get(EngineLease, LEASE_NAME)
                if lease is not None and lease.owner != self.owner and lease_in_force(lease, now):
                    return False
        with self.store.writer() as s:
            lease = s.get(EngineLease, LEASE_NAME)
            mine = lease is not None and lease.owner == self.owner
            if mine or not lease_in_force(lease, now):
                if lease is None:
                    lease = EngineLease(
                        name=LEASE_NAME,
                        owner=self.owner,
                        host=HOST,
                        pid=os.getpid(),
                        heartbeat_at=now,
                        expires_at=now,
                    )
                lease.owner, lease.host, lease.pid = self.owner, HOST, os.getpid()
                lease.heartbeat_at = now
                lease.expires_at = now + timedelta(seconds=self.ttl)
                s.add(lease)
                s.commit()
                took = not self.held
                self.held = True
                self._last_renew = mono
                self._renew_by = now + timedelta(seconds=self.ttl / 5)
                return took
            self.held = False
            return False

    def expire_if_stale(self) -> None:
        """Renewing failed: once a whole term has passed since the last renewal the lease
        has run out, and another engine may serve now."""
        if self.held and time.monotonic() - self._last_renew >= self.ttl:
            self.held = False

    def release(self) -> None:
        if not self.held:
            return
        with self.store.writer() as s:
            lease = s.get(EngineLease, LEASE_NAME)
            if lease is not None and lease.owner == self.owner:
                s.delete(lease)
                s.commit()
        self.held = False
