"""A long-lived worker process: RunRequests in, one result file per request out.

Stage: run. The runner starts `python -m compare worker -` and writes requests
(`compare.run.protocol`) as JSON lines to its stdin, so no request file can be left
behind. The worker imports only the one framework it runs (through
`compare.run.contract`), pins its threads before the runtime starts, and then runs its
requests in sequence, importing the framework once: each run starts from a clean state
(the implementation's `configure` reseeds every generator and clears what an earlier
run left: Keras's session and compiled functions, torch.compile's caches), trains with
the shared data and the shared timing definition (`compare.run.loop`), and writes its
result atomically. `tests/test_workers.py` proves a run gives the same bits in a
reused worker as in a fresh one.

What the worker guarantees, whatever happens to the run:
- it dies with the runner (a kill -9 of the runner leaves no orphan writing later);
- it cannot open a network connection (`compare.network`);
- a NaN or infinite training or validation loss ends the run as `diverged`, any other
  exception as `failed`, both with the epoch and the reason; what was measured before
  stays in the result; non-finite numbers are written as null, so every result file
  is strict JSON.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pathlib
import resource
import signal
import sys
import threading
import time
import traceback

from compare import files, network
from compare.errors import UserError
from compare.run import contract, environment, loop, protocol

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def emit(kind: str, payload) -> None:
    print(protocol.event_line(kind, payload), flush=True)


# --- process safety -----------------------------------------------------------------


def die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this process when the runner dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    else:  # no prctl: poll for the parent instead

        def watch():
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)  # the runner died before the signal was armed


def reset_peak_memory() -> None:
    """Start a new peak-memory window for this process (Linux: "5" to clear_refs
    resets VmHWM), so a reused worker reports each run's own peak."""
    # Not Linux: peak_memory_mb falls back to the process's lifetime peak.
    with contextlib.suppress(OSError):
        pathlib.Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb() -> float:
    """Peak resident memory of this process since `reset_peak_memory` (the framework's
    own footprint included), same probe for both frameworks."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def execute(request: protocol.RunRequest, worker_run_index: int = 0) -> int:
    """Run the request and write its result, whatever happens to the run."""
    reset_peak_memory()
    started = time.time()
    result = {
        **protocol.result_header(request),
        # 0: this process started for this run (its imports are in its phases); n: the
        # worker's (n+1)-th run, its framework already imported.
        "worker_run_index": worker_run_index,
        "network_blocked": network.network_forbidden(),
        "status": "running",
        "stage": "setup",  # setup, training, test: where a failure happened
        "epochs": [],
        "environment": environment.fingerprint(),
        "node": environment.node(),
        "gpu": None,  # the GPU the run used, once the framework has chosen its device
        # Seconds from the runner's spawn to this line: interpreter start and our imports.
        "startup_seconds": started - request.spawn_time if request.spawn_time else None,
    }
    try:
        loop.train_and_evaluate(request, result, emit)
        result["status"] = "ok"
        del result["stage"]
    except UserError:
        raise
    except loop.Diverged as error:
        result.update(status="diverged", reason=str(error), failed_epoch=len(result["epochs"]))
        result["failed_stage"] = result.pop("stage")
    except Exception as error:  # one run's crash must not end the study
        stage = result.pop("stage")
        where = f"in epoch {len(result['epochs']) + 1}" if stage == "training" else f"in {stage}"
        result.update(
            status="failed",
            reason=f"{type(error).__name__} {where}: {error}",
            failed_stage=stage,
            failed_epoch=len(result["epochs"]) + 1 if stage == "training" else None,
            traceback=traceback.format_exc(limit=20),
        )
    result["wall_seconds"] = time.time() - started
    result["peak_memory_mb"] = peak_memory_mb()
    files.write_json_atomic(pathlib.Path(request.result_path), files.finite_or_none(result))
    return 0


def probe(framework: str, device: str) -> int:
    """Check once, before a study starts, that `framework` can use `device`."""
    runtime = contract.load(framework).configure(1, 0, device)
    if runtime["device_notice"]:
        emit(protocol.NOTICE, runtime["device_notice"])
    return 0


def _log_to(path: str | None) -> None:
    """Send this process's stderr (Python's and the libraries' own) to the run's log."""
    if path is None:
        return
    sys.stderr.flush()
    # Appended: the runner empties the log before it sends the request.
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(handle, 2)
    os.close(handle)


def serve(lines) -> int:
    """Run each request line in turn (one worker key for all); DONE after each."""
    key, code, runner_pid, index = None, 0, None, -1
    for line in lines:
        if not line.strip():
            continue
        index += 1
        request = protocol.RunRequest.from_json(line)
        if key is None:
            key, runner_pid = request.worker_key, request.runner_pid
            if runner_pid is not None:
                die_with_parent(runner_pid)
            network.forbid_network()
        elif request.worker_key != key:
            raise ValueError(f"worker for {key} was sent a request for {request.worker_key}")
        _log_to(request.log_path)
        code = execute(request, worker_run_index=index)
        emit(protocol.DONE, {"result_path": request.result_path})
    if runner_pid is not None:
        exit_now(code)
    return code


def main(request_path: str) -> int:
    """Run the requests read from `request_path` ("-": stdin, as the runner sends them)."""
    if request_path == "-":
        return serve(sys.stdin)
    return serve(pathlib.Path(request_path).read_text().splitlines())


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown.

    The result is already on disk (written atomically), so nothing is lost; what is
    skipped is the destructors of a loaded TensorFlow or PyTorch, which took 2.1 s per
    process here (time from a script's last line to its exit, with both imported) and
    were most of the runner's overhead: the runner waits for the exit.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
