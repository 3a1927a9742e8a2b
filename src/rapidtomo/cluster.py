"""Work spread over a dask.distributed cluster (section ``[cluster]``).

Per-angle ptychography (``golden``, ``baseline``) and tiled inference (``predict``) split into
independent tasks, one per angle or per block of columns. :class:`Cluster` runs them not at all
(``scheduler = "off"``, the default: each stage's own path in this process, which on one machine
is the faster), on a ``LocalCluster`` that it starts (``scheduler = "local"``: ``workers``
processes of one thread each, whose tasks survive a dead worker), or on an existing cluster
(``scheduler`` = its address, from ``dask scheduler`` and ``dask worker ADDRESS --nthreads 1``).
The cluster starts on first use and serves every stage of a command or a pipeline run.

A task whose worker dies (killed, out of memory) is run again on another worker, up to
``retries`` times (the scheduler's ``distributed.scheduler.allowed-failures``; a remote
scheduler applies its own setting, default 3); a task that raises is also retried ``retries``
times. Tasks are submitted a few per worker at a time, so the client never holds more than
that many inputs (one angle's patterns each). Workers read and write files by path: on several
machines the run's files must be on a file system that every worker sees at the same path.
"""
from __future__ import annotations

import itertools
import logging
import uuid
from typing import Any, Callable, Iterable, Iterator

from pydantic import Field

from .config import Settings
from .errors import UserError

log = logging.getLogger("rapidtomo.cluster")

OFF = "off"
LOCAL = "local"


class ClusterSettings(Settings):
    """Section ``[cluster]``: where per-angle and per-tile tasks run."""

    scheduler: str = Field(OFF, description="off: no dask, each stage runs in this process (the two-step stages "
                           "with their own `workers` processes; the faster on one machine); local: a local cluster "
                           "of `workers` processes started here, whose tasks survive a dead worker; or the address "
                           "of a running dask scheduler (tcp://HOST:8786)")
    workers: int = Field(0, ge=0, description="processes of the local cluster, one thread each (0: the CPU "
                         "cores, or 1 where CUDA is available: one process holds the GPU); ignored with a "
                         "scheduler address")
    retries: int = Field(3, ge=0, description="times a task is run again after its worker died or it failed")
    connect_timeout_s: float = Field(10.0, gt=0, description="seconds to wait for the scheduler")


def _call(fn: Callable, item: Any, *args: Any) -> tuple[Any, Any]:
    return item, fn(*args)


class Cluster:
    """The dask cluster of one command or pipeline run, started (or connected to) on first use.

    Use as a context manager, which connects to a given scheduler at once (a local cluster starts
    when the first task is submitted); :meth:`map` runs tasks on it.
    ``Cluster(ClusterSettings(scheduler="off"))`` is inactive: the stages then take their path
    without dask.
    """

    def __init__(self, settings: ClusterSettings | None = None) -> None:
        self.settings = settings or ClusterSettings()
        self._client = None
        self._local = None

    @property
    def active(self) -> bool:
        """Whether tasks go to dask (``scheduler`` is not ``off``)."""
        return self.settings.scheduler != OFF

    def client(self):
        """The ``distributed.Client``, starting the local cluster or connecting on the first call.

        Raises
        ------
        UserError
            The scheduler does not answer within ``connect_timeout_s``.
        """
        if self._client is not None:
            return self._client
        import dask
        from distributed import Client, LocalCluster
        s = self.settings
        if s.scheduler == LOCAL:
            import torch
            from dask.system import CPU_COUNT
            n = s.workers or (1 if torch.cuda.is_available() else CPU_COUNT)
            with dask.config.set({"distributed.scheduler.allowed-failures": s.retries}):
                self._local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            self._client = Client(self._local)
        else:
            try:
                self._client = Client(s.scheduler, timeout=s.connect_timeout_s)
            except (OSError, TimeoutError, ValueError) as e:
                raise UserError(f"[cluster] scheduler {s.scheduler}: cannot connect ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else 'no answer'})") from None
        log.info(f"dask cluster {self._client.scheduler.address}: {self.n_threads()} worker threads")
        return self._client

    def n_threads(self) -> int:
        """Worker threads on the cluster now (tasks that run at once)."""
        return max(1, sum(self.client().nthreads().values()))

    def map(self, fn: Callable, items: Iterable, args: Callable[[Any], tuple], name: str) -> Iterator[tuple[Any, Any]]:
        """Run ``fn(*args(item))`` as one task per item; yield ``(item, result)`` as tasks finish.

        At most two tasks per worker thread are submitted at a time (``args`` is
        called just before an item's task is submitted); task keys are ``NAME-ITEM-TOKEN``. Tasks
        still pending when the iteration stops (an error, a crash of the caller) are cancelled.
        Without items nothing starts.
        """
        from distributed import as_completed
        items = iter(items)
        head = list(itertools.islice(items, 1))
        if not head:
            return
        items = itertools.chain(head, items)
        client = self.client()
        token = uuid.uuid4().hex[:8]

        def submit(item):
            return client.submit(_call, fn, item, *args(item), key=f"{name}-{item}-{token}",
                                 retries=self.settings.retries, pure=False)

        first = [submit(i) for i in itertools.islice(items, 2 * self.n_threads())]
        pending, done = set(first), as_completed(first)
        try:
            for future in done:
                pending.discard(future)
                yield future.result()
                future.release()
                for nxt in itertools.islice(items, 1):
                    f = submit(nxt)
                    pending.add(f)
                    done.add(f)
        finally:
            if pending:
                client.cancel(list(pending))

    def record(self) -> dict[str, Any]:
        """What ran where, for a stage's sidecar: ``scheduler`` (``local`` or the given address),
        ``retries``, and once started the scheduler's ``address`` and the ``worker_threads``;
        ``{"scheduler": "off"}`` when inactive."""
        if not self.active:
            return {"scheduler": OFF}
        rec = {"scheduler": self.settings.scheduler, "retries": self.settings.retries}
        if self._client is not None:  # not started when every task was already done
            rec.update(address=self._client.scheduler.address, worker_threads=self.n_threads())
        return rec

    def close(self) -> None:
        """Close the client and stop a local cluster started here."""
        if self._client is not None:
            self._client.close()
        if self._local is not None:
            self._local.close()
        self._client = self._local = None

    def __enter__(self) -> "Cluster":
        if self.active and self.settings.scheduler != LOCAL:  # an unreachable scheduler fails before any work
            self.client()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
