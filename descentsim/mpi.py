"""One map on many MPI processes: rank 0 hands out tiles and writes the journal, every rank computes.

Protocol (two messages per tile):

* rank 0 → worker, tag ASSIGN: a tile index (``int``), or ``-1`` when no more will come. Each worker
  holds up to ``PREFETCH`` assigned tiles, so it never waits for rank 0 between tiles.
* worker → rank 0, tag RESULT: the tile index (8 bytes) and the tile's fields packed as in the journal
  (about 37 bytes a point). Rank 0 appends it to the journal and assigns the worker its next tile.

Tiles go out dynamically (``schedule="dynamic"``: a diverging tile costs three steps, a stuck one the
whole budget), or in contiguous blocks fixed in advance (``"static"``, for comparison). Rank 0 also
computes, in slices of ``ROOT_SLICE`` points between which it serves the workers, when the job has at
most ``ROOT_COMPUTES_UP_TO`` ranks; above that it only coordinates. Waiting is done by polling with
short sleeps, so an idle rank does not spin a core that a busy one could use.

Whatever the number of ranks, threads or tile shape, each tile is computed by the same pure function
of (spec, tile), so the map's data are identical.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections import deque
from typing import Callable

import numpy as np

from .backends import Backend, get_backend
from .convergence_map import ConvergenceMap
from .errors import DescentsimError, RunInterrupted, SpecError
from .journal import TileJournal, pack_fields, unpack_fields
from .runner import ProgressCallback, compute_tile, finish_journal, open_journal
from .spec import MapSpec
from .threads import available_cores, effective_threads
from .tiles import Tile

TAG_ASSIGN, TAG_RESULT, TAG_STOPPING = 1, 2, 3
STOP = -1
PREFETCH = 2
ROOT_SLICE = 512
ROOT_COMPUTES_UP_TO = 64
POLL_S = 0.0005
ABORT_GRACE_S = 0.5
INDEX = struct.Struct("<q")

#: Environment variables by which MPI launchers (mpiexec of MPICH, Open MPI, MVAPICH, Intel MPI; srun
#: with PMI-2 or PMIx) tell a process it is one of several.
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_RANK")


def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process as one of several ranks (without starting MPI)."""
    for name in LAUNCHER_VARIABLES:
        value = os.environ.get(name)
        if value is not None and (name == "PMIX_RANK" or value.strip() not in ("", "1")):
            return True
    return False


def world():
    """``MPI.COMM_WORLD`` when launched as several ranks, else None (mpi4py is then never imported)."""
    if not launched_by_mpi():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise SpecError(
            "started by an MPI launcher with several ranks, but mpi4py is not installed; "
            "pip install mpi4py (and an MPI, e.g. pip install mpich, if the machine has none)"
        ) from None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def abort_on_exception(comm) -> None:
    """An uncaught exception on any rank prints it and ends the whole job (never a hang)."""
    previous = sys.excepthook
    prefix = f"[{comm.Get_rank()}/{comm.Get_size()}]"

    def hook(kind, value, tb):
        sys.stderr.write(f"{prefix} error: {kind.__name__}: {value}\n")
        previous(kind, value, tb)
        sys.stderr.write(f"{prefix} aborting the job\n")
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_S)  # let the launcher forward the message before the job is torn down
        comm.Abort(1)

    sys.excepthook = hook


def threads_per_rank(comm, threads: int | None) -> tuple[int, str | None]:
    """OpenMP threads for this rank, and a warning if ranks × threads oversubscribe the node's cores.

    Explicit ``threads`` or ``OMP_NUM_THREADS`` win. Otherwise the cores this rank may use, shared out
    among the ranks of its node unless the launcher already bound the rank to its own cores.
    """
    node = comm.Split_type(_mpi().COMM_TYPE_SHARED)
    local_ranks = node.Get_size()
    node.Free()
    cores = os.cpu_count() or 1
    if threads is None and not os.environ.get("OMP_NUM_THREADS", "").strip():
        mine = available_cores()
        threads = max(1, mine // local_ranks) if mine >= cores else mine
    threads = effective_threads(threads)
    warning = None
    if threads * local_ranks > cores:
        warning = (
            f"{local_ranks} ranks × {threads} threads on a node with {cores} cores oversubscribe it; "
            "set --threads (or OMP_NUM_THREADS) to cores / ranks per node"
        )
    return threads, warning


def _mpi():
    from mpi4py import MPI

    return MPI


class Coordinator:
    """Rank 0: hands out tiles, receives results into the journal, and computes when it has time."""

    def __init__(self, comm, spec: MapSpec, engine: Backend, threads: int, journal: TileJournal, schedule: str,
                 progress: ProgressCallback | None, stop_requested: Callable[[], bool]):
        self.comm, self.spec, self.engine, self.threads = comm, spec, engine, threads
        self.journal, self.progress, self.stop_requested = journal, progress, stop_requested
        self.tiles = {t.index: t for t in journal.tiles}
        self.workers = range(1, comm.Get_size())
        self.assigned: dict[int, deque] = {w: deque() for w in self.workers}
        self.stopped: set[int] = set()
        todo = journal.missing
        self.expected = len(todo)
        self.received = 0
        self.trajectory_steps = 0
        self.coordination_s = 0.0
        self.incoming: list = []  # (request, buffer, source) of results being received
        self.remote_tiles = 0
        self.result_bytes = 0
        self.root_computes = comm.Get_size() <= ROOT_COMPUTES_UP_TO
        if schedule == "static":  # contiguous blocks, one per rank, fixed in advance
            blocks = np.array_split(np.arange(len(todo)), comm.Get_size())
            self.own = deque(todo[i] for i in blocks[0])
            self.pending: deque = deque()
            for w in self.workers:
                for i in blocks[w]:
                    self._assign(w, todo[i])
        else:
            self.pending = deque(todo)
            self.own = self.pending
            for _ in range(PREFETCH):
                for w in self.workers:
                    if self.pending:
                        self._assign(w, self.pending.popleft())
        for w in self.workers:
            self._stop_if_done(w)

    def _assign(self, worker: int, tile: Tile) -> None:
        self.assigned[worker].append(tile.index)
        self.comm.send(tile.index, dest=worker, tag=TAG_ASSIGN)

    def _stop_if_done(self, worker: int) -> None:
        if not self.pending and not self.assigned[worker] and worker not in self.stopped:
            self.comm.send(STOP, dest=worker, tag=TAG_ASSIGN)
            self.stopped.add(worker)

    def _record(self, tile: Tile, fields: dict[str, np.ndarray]) -> None:
        self.journal.append(tile, fields)
        self.received += 1
        self.trajectory_steps += int(fields["steps"].sum())
        if self.progress is not None:
            self.progress(len(self.journal.done), len(self.journal.tiles), self.trajectory_steps)

    def serve(self) -> None:
        """Handle every message waiting: receives posted for results, finished ones recorded and answered.

        Receives are non-blocking, so rank 0 never waits for a transfer that needs the sender's help.
        """
        MPI = _mpi()
        status = MPI.Status()
        while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            source, tag = status.Get_source(), status.Get_tag()
            if tag == TAG_STOPPING:
                self.comm.recv(source=source, tag=TAG_STOPPING)
                raise RunInterrupted(len(self.journal.done), len(self.journal.tiles))
            buffer = np.empty(status.Get_count(MPI.BYTE), dtype=np.uint8)
            self.incoming.append((self.comm.Irecv([buffer, MPI.BYTE], source=source, tag=TAG_RESULT), buffer, source))
        waiting = []
        for request, buffer, source in self.incoming:
            if not request.Test():
                waiting.append((request, buffer, source))
                continue
            began = time.perf_counter()
            (index,) = INDEX.unpack_from(buffer)
            tile = self.tiles[index]
            self.assigned[source].remove(index)
            self._record(tile, unpack_fields(buffer[INDEX.size :].tobytes(), tile))
            if self.pending and self.own is self.pending:
                self._assign(source, self.pending.popleft())
            self._stop_if_done(source)
            self.remote_tiles += 1
            self.result_bytes += buffer.size
            self.coordination_s += time.perf_counter() - began
        self.incoming = waiting

    def run(self) -> None:
        while self.received < self.expected:
            self.serve()
            if self.stop_requested():
                raise RunInterrupted(len(self.journal.done), len(self.journal.tiles))
            if self.root_computes and self.own:
                tile = self.own.popleft()
                for w in self.workers:
                    self._stop_if_done(w)
                fields = compute_tile(self.spec, self.engine, tile, self.threads, ROOT_SLICE, self.serve)
                self._record(tile, fields)
            else:
                time.sleep(POLL_S)

    def overhead(self) -> dict:
        """Measured cost of coordination per tile computed elsewhere: for the provenance and the logs.

        Rank 0's time to take in a received result, append it to the journal and send the next
        assignment (including the journal's fsyncs, at most one a second, also given on their own);
        two messages per tile, the result carrying the tile's fields plus an 8-byte index.
        """
        remote = max(1, self.remote_tiles)
        return {
            "coordinator_s_per_tile": self.coordination_s / remote,
            "messages_per_tile": 2,
            "bytes_per_tile": (self.result_bytes + 8 * self.remote_tiles) / remote,
            "journal_sync_s": self.journal.sync_seconds,
        }


def work(comm, spec: MapSpec, engine: Backend, threads: int, tiles: dict[int, Tile],
         stop_requested: Callable[[], bool]) -> None:
    """Ranks above 0: compute assigned tiles and send them to rank 0 until told to stop."""
    MPI = _mpi()
    queue: deque = deque()
    sending: list = []  # (request, buffer) of results in flight: rank 0 receives them between its slices
    finished = told_stopping = False
    while True:
        sending = [(request, buffer) for request, buffer in sending if not request.Test()]
        while comm.Iprobe(source=0, tag=TAG_ASSIGN):
            index = comm.recv(source=0, tag=TAG_ASSIGN)
            if index == STOP:
                finished = True
            else:
                queue.append(index)
        if stop_requested():
            if not told_stopping:
                comm.send(None, dest=0, tag=TAG_STOPPING)
                told_stopping = True
            time.sleep(POLL_S)  # rank 0 ends the job
            continue
        if queue:
            tile = tiles[queue.popleft()]

            def progress_sends():  # a large result moves only while its sender calls MPI
                for request, _ in sending:
                    request.Test()

            fields = compute_tile(spec, engine, tile, threads, ROOT_SLICE, progress_sends)
            message = np.frombuffer(INDEX.pack(tile.index) + pack_fields(fields), dtype=np.uint8)
            sending.append((comm.Isend([message, MPI.BYTE], dest=0, tag=TAG_RESULT), message))
        elif finished:
            MPI.Request.Waitall([request for request, _ in sending])
            return
        else:
            time.sleep(POLL_S)


def run_map_mpi(
    comm,
    spec: MapSpec,
    output: str,
    backend: str = "auto",
    threads: int | None = None,
    tile_shape: tuple[int, int] | None = None,
    resume: bool = False,
    force: bool = False,
    schedule: str = "dynamic",
    progress: ProgressCallback | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = print,
) -> ConvergenceMap | None:
    """``run_map_to_file`` on every rank of ``comm``; returns the map on rank 0, None elsewhere.

    Checks that only rank 0 makes (output, journal) are broadcast, so a refusal ends every rank with
    the same SpecError. RunInterrupted is raised on rank 0 only (it then aborts the job).
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    if schedule not in ("dynamic", "static"):
        raise SpecError(f"schedule must be 'dynamic' or 'static', got {schedule!r}")
    engine = get_backend(backend)
    n_threads, warning = threads_per_rank(comm, threads)
    if warning and comm.Get_rank() == 0:
        log(f"warning: {warning}")
    journal = refusal = None
    if rank == 0:
        try:
            journal = open_journal(spec, output, tile_shape, resume, force)
        except DescentsimError as exc:
            refusal = exc
    refused = comm.bcast(str(refusal) if refusal else None, root=0)
    if refused is not None:
        raise refusal if rank == 0 else SpecError(refused)
    finished = comm.bcast(isinstance(journal, ConvergenceMap), root=0)
    if finished:
        return journal if rank == 0 else None
    layout_shape = comm.bcast(journal.tile_shape if rank == 0 else None, root=0)

    started = time.perf_counter()
    if rank != 0:
        from .tiles import tiles as cut

        work(comm, spec, engine, n_threads, {t.index: t for t in cut(spec.shape, layout_shape)}, stop_requested)
        return None
    resumed = len(journal.done)
    coordinator = Coordinator(comm, spec, engine, n_threads, journal, schedule, progress, stop_requested)
    try:
        coordinator.run()
    except RunInterrupted as stop:
        journal.close()
        raise RunInterrupted(stop.done, stop.total, journal.path) from None
    run = dict(
        backend=engine.name,
        threads=n_threads if engine.parallel else 1,
        ranks=size,
        schedule=schedule,
        wall_time_s=time.perf_counter() - started,
        trajectory_steps=coordinator.trajectory_steps,
        tiles_resumed=resumed,
        **coordinator.overhead(),
    )
    return finish_journal(journal, output, run)
