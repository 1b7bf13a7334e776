"""Dask on the hosts of a training job: the glue between SageMaker's description of the job
and ``distributed``, and nothing else.

Every instance of a job runs the same container with its own ``resourceconfig.json``
(``current_host``, the same sorted ``hosts``).  Here, inside the training process:

- the first host of ``hosts`` (the leader) runs the scheduler on port
  :data:`SCHEDULER_PORT`, and drives the job with a client;
- every host, the leader included, runs one worker named after its host, bound to the
  address its host name resolves to, on port :data:`WORKER_PORT` (instances of one job
  reach each other on any port over the job's own network).  No Nanny: the worker lives
  in the supervised training process, so the supervisor's out-of-memory reporting still
  sees it.  One thread: a fit uses every CPU of its host itself (joblib, OpenMP).
  Its memory limit is the container's (``common/cgroups``: Dask's own detection reads only
  the top-level cgroup file), and Dask's spill, pause and terminate thresholds are off.

The data a host reads stays in :data:`STORE`, in its own process; the leader's steps
(``train/leader.py``) run functions against it, one task per host, pinned to that host and
never moved to another (its rows are nowhere else).  A host that leaves fails the job at
once, naming it; the leader tells every remaining host how the job ended before it closes
the cluster, so each exits 0 on success and with a reason otherwise.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from typing import Any, Callable

from sklearn_byoc.common.contract import ResourceConfig
from sklearn_byoc.common.disk import size_text
from sklearn_byoc.common.errors import UserError

log = logging.getLogger("train")

SCHEDULER_PORT = 8786
WORKER_PORT = 8788
# This host's data and what it learnt from the leader: read by the steps of distributed.py.
STORE: dict = {}
# How often the leader looks whether a host left while it waits for the hosts' work.
POLL_SECONDS = 1.0
LOST_SIGNAL = signal.SIGUSR1


class HostLost(UserError):
    """A host of the job left before the job ended."""


def address_of(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError as exc:
        raise UserError(f"the host name {host!r} of resourceconfig.json does not resolve "
                        f"({exc}); the instances of a job must reach each other by name") \
            from exc


def memory_budget() -> int | None:
    """What this host may use: its container's memory limit, else the machine's memory."""
    from sklearn_byoc.common.cgroups import Cgroup, machine_memory

    return Cgroup.find().memory_limit() or machine_memory()


def _configure(join_timeout: float) -> None:
    import dask

    dask.config.set({
        # The supervisor reports running out of memory; Dask must not spill, pause or kill.
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
        # A task that lost its host is never run again elsewhere: its rows are not there.
        "distributed.scheduler.allowed-failures": 0,
        "distributed.comm.timeouts.connect": f"{int(join_timeout)}s",
    })
    logging.getLogger("distributed").setLevel(logging.WARNING)


def _call(fn: Callable, args: tuple) -> Any:
    """A step, run on a host's worker against that host's store."""
    return fn(STORE, *args)


class _Loop:
    """An event loop in a thread of its own, for the scheduler and the worker."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dask-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


class Cluster:
    """The leader's view: the hosts that joined, and those that left."""

    def __init__(self, resources: ResourceConfig, join_timeout: float):
        self.resources = resources
        self.hosts = tuple(resources.hosts)
        self.names = self.hosts
        self.join_timeout = join_timeout
        self.lost: list[str] = []
        self.closing = False
        self.client = None
        self._loop: _Loop | None = None
        self._scheduler = None
        self._worker = None

    # -- start --------------------------------------------------------------------------
    def start(self, budget: int | None) -> "Cluster":
        from distributed import Client, Scheduler, Worker
        from distributed.diagnostics.plugin import SchedulerPlugin

        cluster = self

        class Watch(SchedulerPlugin):
            names: dict[str, str] = {}

            def add_worker(self, scheduler=None, worker=None, **kwargs):
                self.names[worker] = str(scheduler.workers[worker].name)

            def remove_worker(self, scheduler=None, worker=None, **kwargs):
                cluster._lose(self.names.get(worker, worker))

        _configure(self.join_timeout)
        host = address_of(self.resources.current_host)
        self._loop = _Loop()

        async def start():
            scheduler = await Scheduler(host=host, port=SCHEDULER_PORT, dashboard=False,
                                        dashboard_address=None)
            scheduler.add_plugin(Watch())
            worker = await Worker(scheduler.address, host=host, port=WORKER_PORT,
                                  name=self.resources.current_host, nthreads=1,
                                  memory_limit=budget or 0, dashboard=False)
            return scheduler, worker

        try:
            self._scheduler, self._worker = self._loop.run(start())
        except (OSError, RuntimeError) as exc:
            # distributed wraps a port already taken in "Scheduler failed to start".
            raise UserError(f"this instance could not listen on {host} ports {SCHEDULER_PORT} "
                            f"and {WORKER_PORT} for the job's other instances "
                            f"({exc.__cause__ or exc}); another process holds them") from exc
        self.client = Client(self._scheduler.address, timeout=f"{int(self.join_timeout)}s")
        self._wait_for_hosts()
        signal.signal(LOST_SIGNAL, self._raise_lost)
        return self

    def _wait_for_hosts(self) -> None:
        started = time.monotonic()
        deadline = started + self.join_timeout
        while True:
            joined = {str(w["name"]) for w in self.client.scheduler_info(n_workers=-1)
                      ["workers"].values()}
            missing = [h for h in self.hosts if h not in joined]
            if not missing:
                log.info("all %d instances joined in %.1f s", len(self.hosts),
                         time.monotonic() - started)
                return
            if time.monotonic() > deadline:
                raise UserError(
                    f"instance(s) {', '.join(missing)} did not join the job within "
                    f"{self.join_timeout:g} s (cluster_join_timeout): their training process "
                    "did not start or cannot reach this instance on ports "
                    f"{SCHEDULER_PORT} and {WORKER_PORT}; see their logs")
            time.sleep(0.2)

    # -- hosts leaving -----------------------------------------------------------------
    def _lose(self, host: str) -> None:
        if host in self.lost or self.client is None or self.closing:
            return
        self.lost.append(host)
        log.error("instance %s left the job", host)
        # The leader may be fitting in this process: interrupt it.
        signal.pthread_kill(threading.main_thread().ident, LOST_SIGNAL)

    def _raise_lost(self, _signum, _frame):
        raise self.lost_error()

    def lost_error(self) -> HostLost:
        host = self.lost[0]
        return HostLost(f"instance {host} left the job before it ended (its training process "
                        "stopped or its instance was lost): its share of the rows is on no "
                        f"other instance, so the job stops; {host}'s log says why")

    # -- the Hosts the leader's steps run on ------------------------------------------
    def each(self, fn: Callable, *args: Any,
             per_host: dict[str, tuple] | None = None) -> dict[str, Any]:
        futures = {h: self._submit(h, fn, args + tuple((per_host or {}).get(h, ())))
                   for h in self.hosts}
        return self._gather(futures)

    def on(self, host: str, fn: Callable, *args: Any) -> Any:
        return self._gather({host: self._submit(host, fn, args)})[host]

    def _submit(self, host: str, fn: Callable, args: tuple):
        return self.client.submit(_call, fn, args, workers=[host], allow_other_workers=False,
                                  pure=False, retries=0)

    def _gather(self, futures: dict) -> dict[str, Any]:
        from distributed import wait

        pending = list(futures.values())
        while True:
            if self.lost:
                raise self.lost_error()
            try:
                wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            if any(f.status == "error" for f in pending) \
                    or all(f.status == "finished" for f in pending):
                break
        return {host: future.result() for host, future in futures.items()}

    # -- end -----------------------------------------------------------------------------
    def finish(self, failure: str | None) -> None:
        """Tell every remaining host how the job ended, then close the cluster."""
        self.closing = True
        outcome = ("failed", failure) if failure else ("done", None)
        if self.client is not None:
            try:
                self.client.run(_set_outcome, outcome, self.resources.current_host)
            except Exception as exc:  # noqa: BLE001 - a host already gone hears nothing
                log.debug("could not tell every host the outcome: %s", exc)
            try:
                self.client.shutdown()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing the cluster: %s", exc)
            self.client = None
        if self._loop is not None:
            for server in (self._worker, self._scheduler):
                if server is not None:
                    try:
                        self._loop.run(server.close(), timeout=30)
                    except Exception as exc:  # noqa: BLE001 - closing on the way out
                        log.debug("closing %s: %s", type(server).__name__, exc)


def _set_outcome(outcome: tuple, leader: str) -> None:
    STORE["outcome"] = outcome
    STORE["leader"] = leader


def serve_as_worker(resources: ResourceConfig, join_timeout: float, budget: int | None) -> None:
    """A host other than the first: its worker serves the leader until the job ends; returns
    when the job succeeded, raises when it failed or the leader was lost."""
    from distributed import Worker

    _configure(join_timeout)
    leader = resources.hosts[0]
    host = address_of(resources.current_host)
    scheduler = f"tcp://{address_of(leader)}:{SCHEDULER_PORT}"
    loop = _Loop()

    async def work():
        worker = await Worker(scheduler, host=host, port=WORKER_PORT,
                              name=resources.current_host, nthreads=1,
                              memory_limit=budget or 0, death_timeout=join_timeout,
                              dashboard=False)
        await worker.finished()

    try:
        loop.run(work())
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        raise UserError(f"this instance could not join the job's first instance {leader} at "
                        f"{scheduler} within {join_timeout:g} s (cluster_join_timeout): {exc}") \
            from exc
    state, reason = STORE.get("outcome", (None, None))
    if state == "done":
        log.info("the job ended on %s; this instance wrote nothing, as it should", leader)
        return
    if state == "failed":
        raise UserError(f"the job failed on {leader}: {reason}")
    raise HostLost(f"instance {leader}, which coordinates the job, left it before it ended "
                   "(its training process stopped or its instance was lost); its log says "
                   "why")


def describe(resources: ResourceConfig, budget: int | None) -> str:
    n = len(resources.hosts)
    role = "the coordinator and a worker" if resources.current_host == resources.hosts[0] \
        else f"a worker; the coordinator runs on {resources.hosts[0]}"
    memory = f"memory budget {size_text(budget)}" if budget else "no memory limit found"
    return f"this is {resources.current_host}, one of {n} instances: {role} ({memory})"
