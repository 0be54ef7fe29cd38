"""A Hypothesis state machine over the job lifecycle with real processes and a real database:
submit, tick, stop, kill a job's process, crash or restart the engine, move the clock.

What it checks after every step:
- a final status never changes again;
- no job's code runs twice: the ticker prints "tick 0" first thing, so the count of those
  lines in the job's own log counts real executions, whatever the engine recorded (and no
  job has two `started` events either);
- at most ``WORKERS`` jobs hold a worker (running or stopping) at once;
- every change of a job's status that the database saw (a trigger records each one, whoever
  wrote it) is a move of the lifecycle's ``JOB_MOVES`` table.
At the end every job reaches a final state, none `running` without a live process.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from conftest import write_csv
from deploy_support import add_ticker, utc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import text

from core.clock import FakeClock
from core.engine import Engine
from core.errors import ModelDeckError
from core.lifecycle import FINAL_STATUSES, JOB_MOVES, JobStatus
from core.procfs import process_alive
from core.service import Deck

WORKERS = 2
TTL = 15.0


class JobLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="modeldeck-sm-"))
        repo = self.tmp / "repo"
        add_ticker(repo)
        (repo / "data").mkdir()
        write_csv(repo / "data" / "train.csv", rows=10)
        self.clock = FakeClock(utc(2026, 5, 1, 12, 0))
        self.deck = Deck(home=self.tmp / "home", clock=self.clock)
        self.deck.add_project("proj", repo)
        self.deck.add_dataset("proj", "train", repo / "data" / "train.csv", target="label")
        with self.deck.engine.begin() as conn:  # every status change, whoever writes it
            conn.execute(text("CREATE TABLE moves_seen (job_id TEXT, frm TEXT, too TEXT)"))
            conn.execute(
                text(
                    "CREATE TRIGGER see_moves AFTER UPDATE OF status ON job "
                    "WHEN old.status IS NOT new.status BEGIN "
                    "INSERT INTO moves_seen VALUES (new.id, old.status, new.status); END"
                )
            )
        self.made: list[Engine] = []  # every engine, crashed ones too: shut down at the end
        self.engine = self._new_engine()
        self.jobs: list[str] = []
        self.final: dict[str, str] = {}

    def _new_engine(self) -> Engine:
        engine = Engine(self.deck, workers=WORKERS, grace=1.0, lease_ttl=TTL)
        self.made.append(engine)
        return engine

    def _pick(self, i: int) -> str:
        return self.jobs[i % len(self.jobs)]

    # -- rules ----------------------------------------------------------------------------

    @rule(long=st.booleans())
    def submit(self, long: bool) -> None:
        hp = {"lines": 100_000, "every": 0.01} if long else {"lines": 3, "every": 0}
        self.jobs.append(self.deck.train("proj", "ticker", "train", hp).id)

    @rule(rounds=st.integers(1, 3))
    def tick(self, rounds: int) -> None:
        for _ in range(rounds):
            self.engine.tick()
            time.sleep(0.02)

    @precondition(lambda self: self.jobs)
    @rule(i=st.integers(0, 50))
    def stop(self, i: int) -> None:
        try:
            self.deck.stop(self._pick(i))
        except ModelDeckError:
            pass  # already final: refused, as it should be

    @precondition(lambda self: self.jobs)
    @rule(i=st.integers(0, 50))
    def kill_process(self, i: int) -> None:
        job = self.deck.job(self._pick(i))
        if job.pid and job.status == "running":
            try:
                os.killpg(job.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @rule()
    def crash_engine(self) -> None:
        """The engine dies (no release, no more ticks); its lease runs out; a new one starts."""
        self.engine = self._new_engine()
        self.clock.advance(TTL + 1)

    @rule()
    def restart_engine(self) -> None:
        self.engine.shutdown()
        self.engine = self._new_engine()

    @rule(seconds=st.sampled_from([1, 5, 30]))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # -- invariants -----------------------------------------------------------------------

    def _runs(self, job_id: str) -> int:
        path = self.deck.log_path(job_id)
        text = path.read_text() if path.exists() else ""
        return text.splitlines().count("tick 0")

    @invariant()
    def final_states_stay_final(self) -> None:
        for view in self.deck.jobs(limit=1000):
            if view.id in self.final:
                assert view.status == self.final[view.id], (view.id, self.final[view.id], view)
            elif view.status in FINAL_STATUSES:
                self.final[view.id] = view.status

    @invariant()
    def no_job_runs_twice(self) -> None:
        for job_id in self.jobs:
            assert self._runs(job_id) <= 1, (job_id, self.deck.events(job_id))
            started = [e for e in self.deck.events(job_id) if e.kind == "started"]
            assert len(started) <= 1, (job_id, started)

    @invariant()
    def at_most_workers_hold_a_worker(self) -> None:
        busy = self.deck.count_jobs(status=["running", "stopping"])
        assert busy <= WORKERS, [(j.id, j.status) for j in self.deck.jobs(limit=1000)]

    @invariant()
    def every_move_is_in_the_table(self) -> None:
        with self.deck.engine.connect() as conn:
            seen = conn.execute(text("SELECT DISTINCT frm, too FROM moves_seen")).all()
        for frm, to in seen:
            assert (JobStatus(frm), JobStatus(to)) in JOB_MOVES, (frm, to)

    def teardown(self) -> None:
        try:
            self._settle()
        finally:
            for view in self.deck.jobs(limit=1000):
                if view.pid and process_alive(view.pid, None):
                    try:
                        os.killpg(view.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            for engine in self.made:  # their fork servers end with them
                engine.shutdown()
            self.deck.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _settle(self) -> None:
        """Stop what is left, let the engine finish everything; check the end state."""
        for job_id in self.jobs:
            try:
                self.deck.stop(job_id)
            except ModelDeckError:
                pass
        deadline = time.monotonic() + 30
        while True:
            self.engine.tick()
            views = self.deck.jobs(limit=1000)
            if all(v.status in FINAL_STATUSES for v in views):
                break
            assert time.monotonic() < deadline, [(v.id, v.status) for v in views]
            time.sleep(0.05)
        self.final_states_stay_final()
        self.no_job_runs_twice()
        self.every_move_is_in_the_table()
        for view in self.deck.jobs(limit=1000):
            if view.status == "completed":
                assert self._runs(view.id) == 1
            assert not (view.pid and process_alive(view.pid, None)), view


JobLifecycle.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_job_lifecycle = JobLifecycle.TestCase
