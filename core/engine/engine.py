"""``Engine``: the phases composed into rounds, and the one loop that serves them."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from core import pgwakeup, wakeup
from core.hosts import LOST_AFTER
from core.logchunks import LogCopy
from core.procfs import engine_id
from core.store import Store
from core.views import EngineStatus

from .alerts import AlertPhase
from .common import FIRING_SCHEDULES, SERVING, Guard, log
from .dispatcher import Dispatcher
from .executor import LOCAL, ExecutorContext, Executors
from .follower import Follower, Running
from .heartbeat import Heartbeat
from .ingest import Ingest
from .lease import Lease
from .outcome import Outcomes
from .recovery import Recovery
from .scheduler import Scheduler


class HasStore(Protocol):
    """Anything that hands out its store (a ``Deck``): the engine needs only the store."""

    store: Store


class Engine:
    """Runs jobs of one database. ``tick()`` does one round; ``serve()`` runs rounds until
    told to stop; ``start()`` serves on a thread of its own."""

    def __init__(
        self,
        store: Store | HasStore,
        workers: int | None = None,
        grace: float = 10.0,
        poll: float = 0.25,
        lease_ttl: float = 15.0,
        only_job: str | None = None,
        schedules: bool = True,
        fork_server: bool = True,
        lease: bool = True,
        executor: str = LOCAL,
        executor_options: Mapping[str, Any] | None = None,
        lost_after: float = LOST_AFTER,
        ingest_every: float = 0.5,
    ) -> None:
        """``lease=False``: a foreground engine (a job command with no engine serving). It
        never takes the database's engine lease, so a real engine can start at any time; it
        runs only ``only_job``, while no engine serves, and lets a real engine adopt it.
        ``executor``: where code jobs run whose model names no executor (``model.json``);
        ``executor_options``: the executors' own (``ray_address``, ``ray_lost_after``).
        ``lost_after``: seconds after which another host not seen is gone, its jobs lost.
        ``ingest_every``: how often a running job's progress records go into its timeline
        (seconds; a job that ends sooner has them read with its end)."""
        self.store: Store = store if isinstance(store, Store) else store.store
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.grace = grace
        self.poll = poll
        self.lease_ttl = lease_ttl
        self.only_job = only_job
        self.schedules = schedules and only_job is None and lease
        self.foreground = not lease and only_job is not None
        self.id = engine_id(self, job_command=only_job is not None)
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._listener: wakeup.Listener | pgwakeup.Listener | None = None  # other processes' pokes
        self._listen_retry = 0.0
        # The phases, each given what it works with.
        store_ = self.store
        self.guard = Guard()
        self.executors = Executors(
            ExecutorContext(
                store_.jobs_dir,
                self._wake.set,
                fork_server,
                grace=grace,
                default=executor,
                options=dict(executor_options or {}),
            )
        )
        self.lease = Lease(store_, self.id, lease_ttl, enabled=lease)
        self.lease_failing = False  # the last renewal failed (a locked or full database)
        ingest = Ingest(store_)
        self.outcomes = Outcomes(store_, ingest, on_end=self._wake.set)
        self.follower = Follower(
            store_,
            self.id,
            grace,
            self.executors,
            self.guard,
            self.outcomes,
            ingest,
            LogCopy(store_),
            ingest_every,
        )
        self.dispatcher = Dispatcher(
            store_,
            self.id,
            self.workers,
            grace,
            self.executors,
            self.follower,
            self.outcomes,
            only_job,
        )
        self.recovery = Recovery(
            store_,
            self.id,
            self.executors,
            self.follower,
            self.outcomes,
            self.guard,
            only_job,
            lost_after,
        )
        self.scheduler = Scheduler(store_)
        self.alerts = AlertPhase(store_)  # finds notices; its courier thread delivers them
        self.heartbeat = Heartbeat(store_, self.id, self.workers)
        self._unsubscribe = store_.on_submit(lambda _job_id: self._wake.set())

    # -- what others see ------------------------------------------------------------------

    @property
    def holds_lease(self) -> bool:
        return self.lease.held

    @property
    def shares_queue(self) -> bool:
        """Whether this engine dispatches beside others without the lease (PostgreSQL: the
        lease then only says who fires schedules); never a foreground engine."""
        return self.store.shared_queue and self.lease.enabled

    @property
    def serving(self) -> bool:
        """Whether this engine claims queued jobs now: it holds the lease, or shares the
        queue with the others."""
        return self.lease.held or self.shares_queue

    @property
    def running(self) -> dict[str, Running]:
        """The jobs this engine follows, by id (read it through ``status()`` elsewhere)."""
        return self.follower.running

    def status(self) -> EngineStatus:
        """A frozen view of this engine: whether it serves, its workers, the jobs it follows."""
        with self._lock:
            running = tuple(self.follower.running)
        return EngineStatus(serving=self.serving, workers=self.workers, running=running)

    # -- serving --------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on a thread of its own until ``shutdown()``."""
        self._thread = threading.Thread(target=self.serve, name="modeldeck-engine", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Start the next round now (a signal handler, a commit of this process)."""
        self._wake.set()

    def serve(self, until: Callable[[], bool] | None = None, max_wait: float | None = None) -> None:
        """Run rounds until ``shutdown()``, or until ``until()`` (asked after each round) says
        so; between rounds it sleeps until woken, the next schedule fire or its poll
        (``max_wait`` at most)."""
        SERVING.add(self.id)
        # Beating before the first claim: a peer's recovery leaves this engine's jobs to it.
        self.guard.run("writing the engine's heartbeat", lambda: self.heartbeat.beat(0))
        if not self.foreground:
            self.guard.run("ending lost jobs' processes", self.recovery.end_lost)
        self.guard.run("starting the executor", self.executors.prepare)
        try:
            self._serve(until, max_wait)
        finally:
            SERVING.discard(self.id)

    def _serve(self, until: Callable[[], bool] | None, max_wait: float | None) -> None:
        while not self._halt.is_set():
            try:
                self.tick()
            except Exception:  # keep serving: one bad round must not stop the engine
                log.exception("engine tick failed")
            if until is not None and until():
                return
            delay = self._sleep_time()
            if max_wait is not None:
                delay = min(delay, max_wait)
            self._wake.wait(delay)
            self._wake.clear()

    def _sleep_time(self) -> float:
        delay = self.poll
        if self.lease.held and self.schedules:
            nxt = self.scheduler.next_fire  # as of this round's firing: no query per sleep
            if nxt is not None:
                wait = (nxt - self.store.now()).total_seconds()
                retry = self.guard.retry_at(FIRING_SCHEDULES)
                if retry is not None:  # a fire time it failed at: wait for its back-off
                    wait = max(wait, retry - time.monotonic())
                delay = min(delay, max(0.0, wait))
        return delay

    def idle(self) -> bool:
        """Nothing running here and nothing queued for it (``only_job``: that job)."""
        return not self.follower.running and not self.dispatcher.queued_ids(1)

    def settled(self) -> bool:
        """The alerts of what happened so far found and told (see ``AlertPhase.settled``);
        asked of the engine holding the lease, the one that finds and tells them."""
        if not self.lease.held:
            return True
        try:
            return self.alerts.settled()
        except Exception:  # a database that cannot be read now: nothing to wait for here
            log.debug("asking whether the alerts are told failed", exc_info=True)
            return True

    def run_until_idle(self, timeout: float | None = None) -> bool:
        """Serve until nothing is queued or running (for scripts); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        state = {"idle": False}

        def done() -> bool:
            if self.idle():
                state["idle"] = True
                return True
            return deadline is not None and time.monotonic() > deadline

        self.serve(until=done, max_wait=min(self.poll, 0.05))
        return state["idle"]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop dispatching and release the lease; running jobs keep running."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        # A lease that cannot be given back (a full disk) runs out by itself.
        self._unsubscribe()
        self.alerts.shutdown()
        self.guard.run("releasing the engine lease", self.lease.release)
        busy = self.follower.busy()
        self.guard.run("writing the engine's heartbeat", lambda: self.heartbeat.stop(busy))
        self._listen()
        self.executors.close()

    def release_lease(self) -> None:
        self.lease.release()

    def recover_ended(self) -> None:
        """Record the outcome of jobs whose process ended while no engine followed them;
        adopt none (for a read while no engine serves, see ``Deck.settle``)."""
        with self._lock:
            self.recovery.recover(serving=self.lease.held, adopt=False)

    # -- one round ------------------------------------------------------------------------

    def tick(self) -> None:
        """One round: lease, recovery, schedules, new jobs, stops, finished jobs, alerts.

        Each part is guarded: one that raises (a full disk, a bug) is logged once and tried
        again later, and the others go on; a round never raises.
        """
        with self._lock:
            run = self.guard.run
            followed = set(self.follower.running)  # jobs started below wait for the next round
            # Several engines share the queue (PostgreSQL): none needs the lease to claim,
            # so a job it was woken for is claimed first, before the round's upkeep; but in a
            # round that recovers (an engine's first, say), after recovering: recovery judges
            # the running jobs of this host as they were before this round's claims, as on
            # SQLite.
            recover = self.recovery.due()
            early = self.shares_queue and not self._halt.is_set() and not recover
            if early:
                self.follower.see_exits()
                run("dispatching queued jobs", self.dispatcher.dispatch)
            self._renew_lease()
            self._listen()
            if self.serving:
                if not early and self.recovery.due():
                    # With a shared queue every engine recovers its host's jobs whose engine
                    # has gone; the lease holder adopts its host's live ones, as on SQLite.
                    serving = self.lease.held
                    run("recovering jobs", lambda: self.recovery.recover(serving=serving))
                if self.schedules:
                    run(FIRING_SCHEDULES, self.scheduler.fire)
            elif self.foreground and self.recovery.due():
                # Its own job only: adopt it when the engine that ran it has gone.
                only = self.only_job
                run("recovering its job", lambda: self.recovery.recover(False, only=only))
            if not self._halt.is_set() and not early:
                # New jobs first, into the workers of processes that ended: recording the
                # ended jobs' outcomes then overlaps with the new jobs' running.
                self.follower.see_exits()
                if self.serving:
                    run("dispatching queued jobs", self.dispatcher.dispatch)
                elif self.foreground and not self.follower.running:
                    # While no engine serves: else that engine runs the job.
                    run("dispatching its job", self._dispatch_unserved)
            run("following running jobs", lambda: self.follower.follow(followed))
            serving = self.lease.held and not self._halt.is_set()
            run("finding alerts", lambda: self.alerts.tick(serving))
            # Last: a job queued meanwhile does not wait for the heartbeat's write.
            if not self._halt.is_set() and self.heartbeat.due():
                busy = self.follower.busy()
                run("writing the engine's heartbeat", lambda: self.heartbeat.beat(busy))

    def _renew_lease(self) -> None:
        if self._halt.is_set():
            return
        took = [False]

        def renew() -> None:
            took[0] = self.lease.renew()

        renewed = self.guard.run("renewing the engine lease", renew)
        self.lease_failing = not renewed  # the database could not be written (locked, full)
        if not renewed:
            self.lease.expire_if_stale()
        elif took[0]:
            self.recovery.reset()  # a new holder looks for jobs to recover at once

    def _dispatch_unserved(self) -> None:
        if self.store.serving_engine() is None:
            self.dispatcher.dispatch()

    def _listen(self) -> None:
        """While this engine serves, it hears jobs queued by other processes at once."""
        serving = self.serving and not self._halt.is_set()
        if self._listener is not None and not getattr(self._listener, "alive", True):
            self._listener.close()  # its connection dropped: listen again
            self._listener = None
        if serving and self._listener is None and time.monotonic() >= self._listen_retry:
            self._listener = self.store.listen(self._wake.set)
            if self._listener is None:  # an engine that lost the lease still listens
                self._listen_retry = time.monotonic() + 5.0
        elif not serving and self._listener is not None:
            self._listener.close()
            self._listener = None
