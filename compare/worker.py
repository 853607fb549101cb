"""One run in its own process: (experiment, framework, seed) -> one result file.

The runner starts `python -m compare worker REQUEST.json`. This module imports only
the one framework it runs, pins its threads before the runtime starts, trains with the
shared data and the shared timing definition, and writes the result atomically.
Progress goes to stdout as `PROGRESS {json}` lines, after each clock read.

Exit codes: 0 a result was written (ok, failed or diverged); 2 a user error (one line
on stderr, no result written).
"""

from __future__ import annotations

import importlib
import json
import math
import pathlib
import resource
import sys
import time
import traceback

from compare import data as data_mod
from compare import environment, metrics, regression, results, timing
from compare.errors import UserError
from compare.spec import REGRESSORS, ExperimentSpec, from_dict

IMPLEMENTATIONS = {"torch": "pytorch_impl", "keras": "keras_impl"}


def emit(event: dict) -> None:
    print("PROGRESS " + json.dumps(event), flush=True)


class Diverged(Exception):
    """The training loss became NaN or infinite."""


def train_and_evaluate(request: dict, result: dict) -> None:
    """Fill `result` in place, so a failure keeps everything measured before it."""
    experiment = from_dict(ExperimentSpec, request["experiment"])
    seed, framework = request["seed"], request["framework"]
    train_spec = experiment.train
    phases = timing.PhaseTimer()
    result["phase_seconds"] = phases.seconds

    with phases.phase("imports"):
        impl = importlib.import_module(IMPLEMENTATIONS[framework])
        result["runtime"] = impl.configure(request["threads"], seed, request["device"])
    phases.synchronize = impl.synchronize
    result["device"] = result["runtime"]["device"]

    if experiment.model.architecture in REGRESSORS:
        module = importlib.import_module(f"{IMPLEMENTATIONS[framework]}.regression")
        regression.train_and_record(module, experiment, seed, phases, result)
        final = result["epochs"][-1]
        emit({"epoch": final["epoch"], "epochs": train_spec.epochs, "loss": final["train_loss"]})
        if not math.isfinite(final["train_loss"]):
            raise Diverged(f"training loss is {final['train_loss']} in step {final['epoch']}")
        return

    with phases.phase("data"):
        shared = data_mod.load_shared(experiment.data, request.get("data_dir"))
    result["split_manifest_hash"] = shared.manifest_hash
    result["split_manifest"] = shared.manifest

    with phases.phase("build"):
        model = impl.build_model(experiment.model)
        trainer = impl.Trainer(model, train_spec)
    result["parameter_count"] = impl.count_parameters(model)

    def score(x, y):
        """(loss, accuracy) of the model on (x, y); (None, None) for an empty set."""
        if len(y) == 0:
            return None, None
        with phases.phase("evaluation"):
            logits = impl.predict(model, x, train_spec.eval_batch_size)
        return metrics.evaluate(logits, y)

    epochs = result["epochs"]
    for epoch in range(train_spec.epochs):
        if experiment.data.pipeline == "native":
            # Each framework's own input path shuffles (seeded from the run's seed).
            def one_epoch():
                return trainer.train_epoch_native(
                    shared.train_images, shared.y_train, experiment.data, seed
                )
        else:
            order = data_mod.epoch_order(seed, epoch, len(shared.y_train))

            def one_epoch(order=order):
                return trainer.train_epoch(shared.x_train[order], shared.y_train[order])

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
        emit(
            {
                "epoch": epoch + 1,
                "epochs": train_spec.epochs,
                "val_accuracy": val_accuracy,
                "loss": train_loss,
            }
        )
        if not math.isfinite(train_loss):
            raise Diverged(f"training loss is {train_loss} in epoch {epoch + 1}")
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
        "spec": experiment,
        "spec_hash": request["spec_hash"],
        # The experiment's deliberate per-framework differences (empty: the same model).
        "framework_overrides": request.get("framework_overrides", {}),
        "profile": request["profile"],
        "requested_device": request["device"],
        "threads": request["threads"],
        "status": "running",
        "epochs": [],
        "environment": environment.fingerprint(),
        # Seconds from the runner's spawn to this line: interpreter start and our imports.
        "startup_seconds": started - request["spawn_time"],
    }
    try:
        train_and_evaluate(request, result)
        result["status"] = "ok"
    except UserError:
        raise
    except Diverged as error:
        result.update(status="diverged", reason=str(error), failed_epoch=len(result["epochs"]))
    except Exception as error:  # one run's crash must not end the study
        result.update(
            status="failed",
            reason=f"{type(error).__name__}: {error}",
            failed_epoch=len(result["epochs"]) + 1,
            traceback=traceback.format_exc(limit=20),
        )
    result["wall_seconds"] = time.time() - started
    # Peak resident memory of this run's process (Linux reports KiB), same probe for both.
    result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.write_json_atomic(pathlib.Path(request["result_path"]), result)
    return 0


def main(request_path: str) -> int:
    request = json.loads(pathlib.Path(request_path).read_text())
    return execute(request)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
