"""One run in its own process: (experiment, framework, seed) -> one result file.

The runner starts `python -m compare worker -` and writes the request as JSON to its
stdin, so no request file can be left behind. This module imports only the one
framework it runs, pins its threads before the runtime starts, trains with the shared
data and the shared timing definition, and writes the result atomically.

What the worker guarantees, whatever happens to the run:
- it dies with the runner (a kill -9 of the runner leaves no orphan writing later);
- it cannot open a network connection (the data is local; only `compare data
  --download` downloads);
- a NaN or infinite training or validation loss ends the run as `diverged`, any other
  exception as `failed`, both with the epoch and the reason; what was measured before
  stays in the result; non-finite numbers are written as null, so every result file
  is strict JSON.

stdout carries `PROGRESS {epoch record}` after each epoch (after the clock is read)
and `NOTICE text` for things the user should see (e.g. `--device auto` fell back).
Exit codes: 0 a result was written (ok, failed or diverged); 2 a user error (one line
on stderr, no result written); 130 interrupted (no result written).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import json
import math
import os
import pathlib
import resource
import signal
import socket
import sys
import threading
import time
import traceback

from compare import data as data_mod
from compare import environment, metrics, modes, regression, results, timing
from compare.errors import UserError
from compare.spec import REGRESSORS, ExperimentSpec, from_dict

IMPLEMENTATIONS = {"torch": "pytorch_impl", "keras": "keras_impl"}
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_network_blocked = False


def emit(kind: str, payload) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    print(f"{kind} {text}", flush=True)


class Diverged(Exception):
    """The training or validation loss became NaN or infinite."""


class NetworkBlocked(RuntimeError):
    """Something tried to reach the network during a run."""


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


def forbid_network() -> None:
    """Refuse every internet socket connection and name lookup from now on, in this process.

    An audit hook cannot be removed, which is the point: nothing imported later can
    turn it off. Unix sockets stay allowed.
    """
    families = (socket.AF_INET, socket.AF_INET6)
    lookups = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr")
    sends = ("socket.connect", "socket.sendto", "socket.sendmsg")

    def hook(event, args):
        blocked = event in lookups or (
            event in sends and getattr(args[0], "family", None) in families
        )
        if blocked:
            target = args[0] if event in lookups else args[1]
            raise NetworkBlocked(
                f"network access is blocked during a run ({event} {target!r}); the data "
                "must be local: run `python -m compare data --download` first"
            )

    global _network_blocked
    if not _network_blocked:
        sys.addaudithook(hook)
        _network_blocked = True


# --- the run --------------------------------------------------------------------------


def check_finite(epoch: dict) -> None:
    for key, name in (("train_loss", "training"), ("val_loss", "validation")):
        # val_loss is None without a validation set (the PyTorch seed scripts).
        if epoch[key] is not None and not math.isfinite(epoch[key]):
            raise Diverged(f"{name} loss is {epoch[key]} in epoch {epoch['epoch']}")


def train_and_evaluate(request: dict, result: dict) -> None:
    """Fill `result` in place, so a failure keeps everything measured before it."""
    experiment = from_dict(ExperimentSpec, request["experiment"])
    seed, framework = request["seed"], request["framework"]
    mode = request.get("mode", modes.DEFAULT_MODE)
    train_spec = experiment.train
    phases = timing.PhaseTimer()
    result["phase_seconds"] = phases.seconds

    with phases.phase("imports"):
        impl = importlib.import_module(IMPLEMENTATIONS[framework])
        result["runtime"] = impl.configure(
            request["threads"], seed, request["device"], request.get("deterministic", False)
        )
    phases.synchronize = impl.synchronize
    result["device"] = result["runtime"]["device"]
    result["device_notice"] = result["runtime"]["device_notice"]
    # Outside every timed phase: it may start CUDA and runs nvidia-smi.
    result["gpu"] = impl.gpu_info(result["device"])
    if result["device_notice"]:
        emit("NOTICE", result["device_notice"])

    if experiment.model.architecture in REGRESSORS:
        # Random data and full-batch steps (one per "epoch"): see compare/regression.py.
        module = importlib.import_module(f"{IMPLEMENTATIONS[framework]}.regression")
        result["stage"] = "training"
        regression.train_and_record(module, experiment, seed, phases, result)
        final = result["epochs"][-1]
        emit("PROGRESS", {**results.finite_or_none(final), "epochs": train_spec.epochs})
        check_finite(final)
        return

    with phases.phase("data"):
        shared = data_mod.load_shared(experiment.data, request.get("data_dir"))
    result["split_manifest_hash"] = shared.manifest_hash
    result["split_manifest"] = shared.manifest

    with phases.phase("build"):
        model = impl.build_model(experiment.model)
        trainer = impl.Trainer(model, train_spec, mode, device=result["device"])
    result["parameter_count"] = impl.count_parameters(model)

    def score(x, y):
        """(loss, accuracy) of the model on (x, y); (None, None) for an empty set."""
        if len(y) == 0:
            return None, None
        with phases.phase("evaluation"):
            logits = impl.predict(model, x, train_spec.eval_batch_size)
        return metrics.evaluate(logits, y)

    result["stage"] = "training"
    epochs = result["epochs"]
    for epoch in range(train_spec.epochs):
        if experiment.data.pipeline == "native":
            # Each framework's own input path shuffles (seeded from the run's seed).
            def one_epoch():
                return trainer.train_epoch_native(
                    shared.train_images, shared.y_train, experiment.data, seed
                )
        elif mode == "idiomatic":
            # The tutorials' input path (compare/modes.py), in the shared order.
            order = data_mod.epoch_order(seed, epoch, len(shared.y_train))

            def one_epoch(order=order):
                return trainer.train_epoch_native(
                    shared.train_images, shared.y_train, experiment.data, seed, order=order
                )
        else:
            order = data_mod.epoch_order(seed, epoch, len(shared.y_train))

            def one_epoch(order=order):
                return trainer.train_epoch(shared.x_train, shared.y_train, order)

        train_loss, seconds = phases.time(one_epoch)
        val_loss, val_accuracy = score(shared.x_val, shared.y_val)
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "epoch_seconds": seconds,
        }
        if train_spec.test_every_epoch:
            record["test_loss"], record["test_accuracy"] = score(shared.x_test, shared.y_test)
        epochs.append(record)
        emit("PROGRESS", {**results.finite_or_none(record), "epochs": train_spec.epochs})
        # A diverged model only produces NaN from here on: stop, and say where.
        check_finite(record)
    result["stage"] = "test"
    epoch_seconds = [e["epoch_seconds"] for e in epochs]
    phases.seconds["first_epoch"] = epoch_seconds[0]
    phases.seconds["steady_epochs"] = sum(epoch_seconds[1:])

    with phases.phase("evaluation"):
        test_logits = impl.predict(model, shared.x_test, train_spec.eval_batch_size)
    result["test_loss"], result["test_accuracy"] = metrics.evaluate(test_logits, shared.y_test)
    result["test_predictions"] = test_logits.argmax(axis=1).tolist()
    result["test_labels"] = shared.y_test.tolist()
    result["timing"] = timing.summarize_epochs(epoch_seconds, len(shared.y_train))
    result["timing"]["time_to_target_seconds"] = timing.time_to_target(
        epoch_seconds, [e["val_accuracy"] for e in epochs], train_spec.target_accuracy
    )


def execute(request: dict) -> int:
    started = time.time()
    experiment = request["experiment"]
    result = {
        "schema_version": results.SCHEMA_VERSION,
        "experiment": experiment["name"],
        "framework": request["framework"],
        "seed": request["seed"],
        "mode": request.get("mode", modes.DEFAULT_MODE),
        "keras_backend": request.get("keras_backend"),
        "spec": experiment,
        "spec_hash": request["spec_hash"],
        # The experiment's deliberate per-framework differences (empty: the same model).
        "framework_overrides": request.get("framework_overrides", {}),
        "deterministic": request.get("deterministic", False),
        "profile": request["profile"],
        "requested_device": request["device"],
        "threads": request["threads"],
        "network_blocked": _network_blocked,
        "status": "running",
        "stage": "setup",  # setup, training, test: where a failure happened
        "epochs": [],
        "environment": environment.fingerprint(),
        "gpu": None,  # the GPU the run used, once the framework has chosen its device
        # Seconds from the runner's spawn to this line: interpreter start and our imports.
        "startup_seconds": started - request["spawn_time"],
    }
    try:
        train_and_evaluate(request, result)
        result["status"] = "ok"
        del result["stage"]
    except UserError:
        raise
    except Diverged as error:
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
    # Peak resident memory of this run's process (Linux reports KiB), same probe for both.
    result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.write_json_atomic(pathlib.Path(request["result_path"]), results.finite_or_none(result))
    return 0


def probe(framework: str, device: str) -> int:
    """Check once, before a study starts, that `framework` can use `device`."""
    impl = importlib.import_module(IMPLEMENTATIONS[framework])
    runtime = impl.configure(1, 0, device)
    if runtime["device_notice"]:
        emit("NOTICE", runtime["device_notice"])
    return 0


def main(request_path: str) -> int:
    """Run the request read from `request_path` ("-": stdin, as the runner sends it)."""
    text = sys.stdin.read() if request_path == "-" else pathlib.Path(request_path).read_text()
    request = json.loads(text)
    if "runner_pid" in request:
        die_with_parent(request["runner_pid"])
    forbid_network()
    code = execute(request)
    if "runner_pid" in request:
        exit_now(code)
    return code


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
