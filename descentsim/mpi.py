"""One map on many MPI processes: rank 0 hands out tiles and writes the journal, every rank computes.

Protocol, between rank 0 and each worker (ranks above 0):

* ASSIGN, rank 0 → worker: a tile index; ``STOP`` (no more tiles: finish those held); ``(HALT, signal)``
  (drop everything now: the run is being stopped by that signal). A worker holds up to ``PREFETCH``
  assigned tiles, so it never waits for rank 0 between tiles.
* RESULT, worker → rank 0: the tile index (8 bytes) and the tile's fields packed as in the journal
  (journal.POINT_BYTES bytes a point); rank 0 appends it to the journal and assigns the worker its next tile.
* STOPPING, worker → rank 0: the number of the signal (SIGTERM, SIGINT) this worker got; rank 0 then
  halts everyone with it, so that every rank reports the same cause.
* DONE, worker → rank 0, last: every result of this worker has been delivered; rank 0 answers with
  ``RELEASE`` on ASSIGN, after which nothing more passes between them.

Tiles go out dynamically (``schedule="dynamic"``: a diverging tile costs three steps, a stuck one the
whole budget), or in contiguous blocks fixed in advance (``"static"``, for comparison). Rank 0 also
computes, in slices of ``SLICE`` points between which it serves the workers, when the job has at most
``ROOT_COMPUTES_UP_TO`` ranks; above that it only coordinates. Waiting is done by polling with short
sleeps, so an idle rank does not spin a core a busy one could use; receives are non-blocking, and a
worker moves its outgoing results along between slices, so no rank waits on another's computation.

A stop (SIGTERM or SIGINT on any rank: ``stop_requested()`` returns the signal's number) halts every rank
between slices: results already sent are received and journaled, every request is completed, and every
rank raises RunInterrupted with that signal (the command exits 75, or 130 for Ctrl-C). No rank ever
leaves with a request outstanding: MPI_Finalize would fail on it. An error on one rank once the run has
begun aborts the whole job.

Whatever the number of ranks, threads or tile shape, each tile is computed by the same pure function
of (spec, tile), so the map's data are identical.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import time
from collections import deque
from typing import Callable, TypeVar

import numpy as np

from .backends import Backend, get_backend
from .map_data import MapData
from .errors import EXIT_INCOMPLETE, DescentsimError, OutOfSpace, RunInterrupted, SpecError
from .journal import TileJournal, pack_fields, unpack_fields
from .lock import output_lock
from .runner import (ProgressCallback, compute_tile, engine_tile_shape, finish_journal, open_journal, record_history,
                     run_provenance)
from .spec import MapSpec
from .threads import effective_threads
from .tiles import Tile, tiles

TAG_ASSIGN, TAG_RESULT, TAG_STOPPING, TAG_DONE = 1, 2, 3, 4
STOP, HALT, RELEASE = -1, -2, -3
PREFETCH = 2
SLICE = 512
ROOT_COMPUTES_UP_TO = 64
POLL_S = 0.0005
ABORT_GRACE_S = 0.5
INDEX = struct.Struct("<q")
T = TypeVar("T")
#: Asked between slices of work: the number of the signal that asks the run to stop, 0 while none has.
StopRequest = Callable[[], int]

#: Environment variables by which MPI launchers (mpiexec of MPICH, Open MPI, MVAPICH, Intel MPI; srun
#: with PMI-2 or PMIx) tell a process it is one of several; the value is the world size where known.
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_RANK")


#: Set by srun in every task of a job step: the step's number of tasks, and this task's number. srun
#: starts the tasks whether or not it wires them into one MPI world (that takes ``--mpi=pmi2`` or
#: ``pmix`` and an MPI built for it).
SLURM_STEP_TASKS, SLURM_TASK = "SLURM_STEP_NUM_TASKS", "SLURM_PROCID"
#: Where launchers put this process's rank (the last is srun's).
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK", SLURM_TASK)


def launcher_size() -> int | None:
    """The number of ranks an MPI launcher started (0 if it does not say), or None if not launched."""
    for name in LAUNCHER_VARIABLES:
        value = os.environ.get(name, "").strip()
        if name == "PMIX_RANK" and value:
            return 0
        if value.isdigit() and int(value) > 1:
            return int(value)
    return None


def slurm_step_tasks() -> int | None:
    """The number of tasks srun started in this job step when it is more than one and no MPI launcher
    variable says how they are wired, else None."""
    value = os.environ.get(SLURM_STEP_TASKS, "").strip()
    if any(os.environ.get(name) for name in LAUNCHER_VARIABLES) or not value.isdigit() or int(value) < 2:
        return None
    return int(value)


def launcher_rank() -> int:
    """This process's rank as its launcher numbers it (0 when not launched): which of several processes
    that cannot talk to each other speaks for them."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def world():
    """``MPI.COMM_WORLD`` when launched as several ranks, else None (mpi4py is then never imported).

    Refused (SpecError) where the launcher started several processes that MPI does not join into one
    world: each would compute, and write, the whole map.
    """
    launched, tasks = launcher_size(), slurm_step_tasks()
    if launched is None and tasks is None:
        return None
    started = f"srun started {tasks} tasks" if tasks else f"the launcher started {launched or 'several'} ranks"
    try:
        from mpi4py import MPI
    except ImportError:
        raise SpecError(
            f"{started}, but mpi4py is not installed, so each would compute the whole map; "
            "pip install mpi4py (and an MPI, e.g. pip install mpich, if the machine has none)"
        ) from None
    comm = MPI.COMM_WORLD
    library = MPI.Get_library_version().splitlines()[0].strip()
    if tasks and comm.Get_size() == 1:
        raise SpecError(
            f"{started} but MPI sees a world of 1, so each would compute the whole map; give srun the "
            f"--mpi plugin (pmi2 or pmix, see srun --mpi=list) that mpi4py's MPI supports ({library}), "
            "or start one task"
        )
    if launched and comm.Get_size() == 1:
        raise SpecError(
            f"{started} but mpi4py sees only this one: mpi4py was built for another "
            f"MPI ({library}); use that MPI's mpiexec, or rebuild mpi4py"
        )
    return comm if comm.Get_size() > 1 else None


def _mpi():
    from mpi4py import MPI

    return MPI


def prefix(comm) -> str:
    return f"[{comm.Get_rank()}/{comm.Get_size()}]"


def fatal(comm, message: str, code: int = 1) -> None:
    """Print ``message`` (one line, with rank/size) and end the whole job."""
    sys.stderr.write(f"{prefix(comm)} error: {message}\n{prefix(comm)} aborting the job\n")
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_S)  # let the launcher forward the message before the job is torn down
    comm.Abort(code)


def abort_on_exception(comm) -> None:
    """An uncaught exception on any rank prints it and ends the whole job (never a hang)."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        fatal(comm, f"{kind.__name__}: {value}")

    sys.excepthook = hook


def collectively(comm, step: Callable[[], T]) -> T:
    """``step()`` on every rank, then ``agree``: a refusal (DescentsimError) on any rank raises on all."""
    result, error = None, None
    try:
        result = step()
    except DescentsimError as exc:
        error = str(exc)
    agree(comm, error)
    return result


def agree(comm, error: str | None) -> None:
    """A collective check: if any rank has an error, every rank raises SpecError with the first one."""
    errors = comm.allgather(error)
    failed = [(rank, e) for rank, e in enumerate(errors) if e is not None]
    if failed:
        rank, message = failed[0]
        raise SpecError(message if rank == 0 else f"on rank {rank}: {message}")


def threads_per_rank(comm, threads: int | None) -> tuple[int, str | None]:
    """OpenMP threads for this rank, and a warning (for one rank per node) if its cores are oversubscribed.

    Explicit ``threads`` or ``OMP_NUM_THREADS`` win. Otherwise the cores this rank may use (its CPU
    affinity), shared among the ranks of its node that may use the same cores.
    """
    node = comm.Split_type(_mpi().COMM_TYPE_SHARED)
    try:
        mine = _affinity()
        everyone = node.allgather(mine)
        sharing = sum(1 for other in everyone if other & mine)
        if threads is None and not os.environ.get("OMP_NUM_THREADS", "").strip():
            threads = max(1, len(mine) // sharing)
        threads = effective_threads(threads)
        all_threads = node.allgather(threads)
        cores = len(set().union(*everyone))
        warning = None
        if node.Get_rank() == 0 and sum(all_threads) > cores:
            warning = oversubscription(node.Get_size(), sum(all_threads), cores)
    finally:
        node.Free()
    return threads, warning


def oversubscription(ranks: int, threads: int, cores: int) -> str:
    """The warning for a node whose ``ranks`` run ``threads`` threads in all on fewer ``cores``, naming
    the cause: more ranks than cores (no thread count helps), or too many threads per rank."""
    if ranks > cores:
        return (
            f"{ranks} ranks on this node's {cores} core{'s' if cores > 1 else ''}: more ranks than cores oversubscribe "
            f"it; start at most {cores} per node (mpiexec -n, srun --ntasks-per-node)"
            + ("" if threads == ranks else ", each with --threads 1")
        )
    return (
        f"{ranks} ranks with {threads} threads in all on {cores} cores oversubscribe this node; "
        f"set --threads (or OMP_NUM_THREADS) to {cores // ranks}"
    )


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


class _Halt(Exception):
    """Stop computing now (the run is being stopped)."""


class Coordinator:
    """Rank 0: hands out tiles, receives results into the journal, and computes when it has time."""

    def __init__(self, comm, spec: MapSpec, engine: Backend, threads: int, journal: TileJournal, schedule: str,
                 progress: ProgressCallback | None, stop_requested: StopRequest):
        self.comm, self.spec, self.engine, self.threads = comm, spec, engine, threads
        self.journal, self.progress, self.stop_requested = journal, progress, stop_requested
        self.tiles = {t.index: t for t in journal.tiles}
        self.workers = list(range(1, comm.Get_size()))
        self.assigned: dict[int, deque] = {w: deque() for w in self.workers}
        self.stopped: set[int] = set()  # workers sent STOP or HALT
        self.finished: set[int] = set()  # workers that sent DONE
        self.incoming: list = []  # (request, buffer, source) of results being received
        self.halting = False
        self.stop_signal = 0  # the signal stopping the run: this rank's, or the first worker's to report one
        self.trajectory_steps = 0
        self.coordination_s = 0.0
        self.remote_tiles = 0
        self.result_bytes = 0
        self.root_computes = comm.Get_size() <= ROOT_COMPUTES_UP_TO
        self.dynamic = schedule == "dynamic"
        todo = journal.missing
        self.own: deque = deque()
        self.pending: deque = deque()
        if self.dynamic:
            self.pending.extend(todo)
            for _ in range(PREFETCH):
                for w in self.workers:
                    if self.pending:
                        self._assign(w, self.pending.popleft())
        else:  # contiguous blocks fixed in advance, one per computing rank
            computing = ([0] if self.root_computes else []) + self.workers
            for rank, block in zip(computing, np.array_split(np.arange(len(todo)), len(computing))):
                for i in block:
                    if rank == 0:
                        self.own.append(todo[i])
                    else:
                        self._assign(rank, todo[i])
        for w in self.workers:
            self._stop_if_done(w)

    def _assign(self, worker: int, tile: Tile) -> None:
        self.assigned[worker].append(tile.index)
        self.comm.send(tile.index, dest=worker, tag=TAG_ASSIGN)

    def _stop_if_done(self, worker: int) -> None:
        if not self.pending and not self.assigned[worker] and worker not in self.stopped:
            self.comm.send(STOP, dest=worker, tag=TAG_ASSIGN)
            self.stopped.add(worker)

    def _next_own(self) -> Tile | None:
        queue = self.pending if self.dynamic else self.own
        if not self.root_computes or not queue:
            return None
        tile = queue.popleft()
        for w in self.workers:
            self._stop_if_done(w)
        return tile

    def _record(self, tile: Tile, fields: dict[str, np.ndarray]) -> None:
        self.journal.append(tile, fields)
        self.trajectory_steps += int(fields["steps"].sum())
        if self.progress is not None:
            self.progress(len(self.journal.done), len(self.journal.tiles), self.trajectory_steps)

    def serve(self) -> None:
        """Handle every message waiting: receives posted for results, finished ones recorded and answered."""
        MPI = _mpi()
        status = MPI.Status()
        while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            source, tag = status.Get_source(), status.Get_tag()
            if tag == TAG_RESULT:
                buffer = np.empty(status.Get_count(MPI.BYTE), dtype=np.uint8)
                self.incoming.append((self.comm.Irecv([buffer, MPI.BYTE], source=source, tag=tag), buffer, source))
            elif tag == TAG_STOPPING:
                signum = self.comm.recv(source=source, tag=tag)
                self.stop_signal = self.stop_signal or signum
                self.halting = True
            else:  # TAG_DONE: comes after all of that worker's results
                self.comm.recv(source=source, tag=tag)
                self.finished.add(source)
                self.comm.send(RELEASE, dest=source, tag=TAG_ASSIGN)
        waiting = []
        for request, buffer, source in self.incoming:
            if not request.Test():
                waiting.append((request, buffer, source))
                continue
            began = time.perf_counter()
            (index,) = INDEX.unpack_from(buffer)
            tile = self.tiles[index]
            self.assigned[source].remove(index)
            self._record(tile, unpack_fields(buffer[INDEX.size :].tobytes(), tile.size, tile.shape))
            if self.dynamic and self.pending and not self.halting:
                self._assign(source, self.pending.popleft())
            self._stop_if_done(source)
            self.remote_tiles += 1
            self.result_bytes += buffer.size
            self.coordination_s += time.perf_counter() - began
        self.incoming = waiting

    def _serve_or_halt(self) -> None:
        self.serve()
        self.stop_signal = self.stop_signal or self.stop_requested()
        if self.halting or self.stop_signal:
            raise _Halt

    def run(self) -> None:
        """Until every tile is journaled; RunInterrupted (after draining the workers) if stopped."""
        halted = False
        try:
            while len(self.journal.done) < len(self.journal.tiles):
                self._serve_or_halt()
                tile = self._next_own()
                if tile is not None:
                    fields = compute_tile(self.spec, self.engine, tile, self.threads, SLICE, self._serve_or_halt)
                    self._record(tile, fields)
                else:
                    time.sleep(POLL_S)
        except _Halt:
            halted = self.halting = True  # no more assignments
            for w in self.workers:
                if w not in self.finished:
                    self.comm.send((HALT, self.stop_signal), dest=w, tag=TAG_ASSIGN)
        while len(self.finished) < len(self.workers) or self.incoming:  # every result in, every worker done
            self.serve()
            time.sleep(POLL_S)
        self.journal.sync()
        if halted:
            raise RunInterrupted(len(self.journal.done), len(self.journal.tiles), signum=self.stop_signal)

    def overhead(self) -> dict:
        """Measured cost of coordination per tile computed elsewhere: for the provenance and the logs.

        Rank 0's time to take in a received result, append it to the journal and send the next
        assignment (including the journal's fsyncs, at most one a second, also given on their own);
        two messages per tile, the result carrying the tile's fields and an 8-byte index.
        """
        remote = max(1, self.remote_tiles)
        return {
            "coordinator_s_per_tile": self.coordination_s / remote,
            "messages_per_tile": 2,
            "bytes_per_tile": self.result_bytes / remote,
            "journal_sync_s": self.journal.sync_seconds,
        }


def work(comm, spec: MapSpec, engine: Backend, threads: int, layout: dict[int, Tile],
         stop_requested: StopRequest) -> int:
    """Ranks above 0: compute assigned tiles and send them to rank 0; returns the signal that halted the
    run (rank 0's word, else this rank's own), 0 if it was not halted."""
    MPI = _mpi()
    queue: deque = deque()
    sending: list = []  # (request, buffer) of results on their way to rank 0
    state = {"finished": False, "halted": 0, "told": 0}  # halted by rank 0 / told rank 0: the signal

    def check() -> None:  # between tiles and between slices
        for request, _ in sending:
            request.Test()  # a large result moves only while its sender calls MPI
        while comm.Iprobe(source=0, tag=TAG_ASSIGN):
            index = comm.recv(source=0, tag=TAG_ASSIGN)
            if index == STOP:
                state["finished"] = True
            elif isinstance(index, tuple):  # (HALT, signal)
                state["halted"] = index[1]
            else:
                queue.append(index)
        if not state["told"]:
            state["told"] = stop_requested()
            if state["told"]:
                comm.send(state["told"], dest=0, tag=TAG_STOPPING)
        if state["halted"] or state["told"]:
            raise _Halt

    try:
        while True:
            check()
            if queue:
                tile = layout[queue.popleft()]
                fields = compute_tile(spec, engine, tile, threads, SLICE, check)
                message = np.frombuffer(INDEX.pack(tile.index) + pack_fields(fields), dtype=np.uint8)
                sending.append((comm.Isend([message, MPI.BYTE], dest=0, tag=TAG_RESULT), message))
            elif state["finished"]:
                break
            else:
                time.sleep(POLL_S)
    except _Halt:
        pass
    MPI.Request.Waitall([request for request, _ in sending])
    comm.send(None, dest=0, tag=TAG_DONE)
    while True:  # whatever rank 0 sent before it saw DONE, up to its RELEASE
        while not comm.Iprobe(source=0, tag=TAG_ASSIGN):
            time.sleep(POLL_S)
        message = comm.recv(source=0, tag=TAG_ASSIGN)
        if message == RELEASE:
            break
        if isinstance(message, tuple):
            state["halted"] = message[1]
    return state["halted"] or state["told"]


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
    stop_requested: StopRequest = lambda: 0,
    log: Callable[[str], None] = print,
) -> MapData | None:
    """``run_map_to_file`` on every rank of ``comm``; returns the map on rank 0, None elsewhere.

    Every rank must be given rank 0's spec. Refusals before the run (a bad engine or thread count on
    any rank, the output or journal on rank 0) raise the same SpecError on every rank; an error once
    the run has begun aborts the job. A stop (``stop_requested()`` returning a signal's number on any rank)
    raises RunInterrupted, carrying that signal, on every rank.
    """
    rank = comm.Get_rank()

    def choose_engine():
        if schedule not in ("dynamic", "static"):
            raise SpecError(f"schedule must be 'dynamic' or 'static', got {schedule!r}")
        return get_backend(backend, spec.model_def, spec.arithmetic)

    engine = collectively(comm, choose_engine)
    n_threads, warning = collectively(comm, lambda: threads_per_rank(comm, threads))
    if warning:
        log(f"warning: {warning}")
    with contextlib.ExitStack() as held:  # rank 0 holds the output's lock from its checks to the file
        collectively(comm, lambda: held.enter_context(output_lock(output)) if rank == 0 else None)
        tile_shape = tile_shape or engine_tile_shape(spec, engine)
        return _run_locked(comm, spec, output, engine, n_threads, tile_shape, resume, force, schedule, progress,
                           stop_requested)


def _run_locked(comm, spec: MapSpec, output: str, engine: Backend, n_threads: int, tile_shape, resume: bool,
                force: bool, schedule: str, progress, stop_requested: StopRequest) -> MapData | None:
    """``run_map_mpi`` once rank 0 holds the output's lock."""
    rank, size = comm.Get_rank(), comm.Get_size()
    journal = collectively(comm, lambda: open_journal(spec, output, tile_shape, resume, force) if rank == 0 else None)
    finished = comm.bcast(isinstance(journal, MapData), root=0)
    layout_shape = None if finished else comm.bcast(journal.tile_shape if rank == 0 else None, root=0)
    if finished:
        return journal if rank == 0 else None

    started = time.perf_counter()
    try:
        if rank != 0:
            layout = {t.index: t for t in tiles(spec.shape, layout_shape)}
            signum = work(comm, spec, engine, n_threads, layout, stop_requested)
            if signum:
                raise RunInterrupted(0, 0, signum=signum)
            return None
        resumed = len(journal.done)
        coordinator = Coordinator(comm, spec, engine, n_threads, journal, schedule, progress, stop_requested)
        try:
            coordinator.run()
        finally:
            journal.close()
        history = record_history(spec, engine, n_threads)  # a few trajectories: rank 0 runs them
        run = run_provenance(
            spec, engine, n_threads, started, coordinator.trajectory_steps,
            ranks=size, schedule=schedule, tiles_resumed=resumed, **coordinator.overhead(),
        )
        return finish_journal(journal, output, run, history)
    except RunInterrupted as stop:
        raise RunInterrupted(stop.done, stop.total, journal.path if journal is not None else None,
                             signum=stop.signum) from None
    except OutOfSpace as exc:  # the journal is intact: resumable once space is freed
        fatal(comm, str(exc), EXIT_INCOMPLETE if exc.partial is not None else 2)
    except DescentsimError as exc:
        fatal(comm, str(exc), 2)
    except MemoryError:
        fatal(comm, "not enough memory for this map; use fewer points or a smaller model", 2)
    return None
