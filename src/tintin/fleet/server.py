"""The Flower ServerApp of a fleet: ``@app.main`` runs the chosen strategy round by round.

The loop is Flower's ``Strategy.start`` (configure, send and receive through the ``Grid``,
aggregate, evaluate) with two additions: the global model is evaluated on the pooled test set
after every round, and each round is reported to a callback (the command's one progress line per
round) with its seconds and exact bytes. With ``compare_float`` the float32 FedAvg comparison runs
next, in the same Flower simulation, on the same devices and samples.
"""

from __future__ import annotations

import copy
import time

from .codec import arrays_model, from_record
from .errors import FleetError
from .local import evaluate_device, evaluate_float, set_params
from .spec import FleetSpec

NODE_WAIT_SECONDS = 300.0
PULL_INTERVAL = 0.05


class RunStopped(FleetError):
    """The caller stopped the run (Ctrl-C): the ServerApp ends at once."""


def exchange(grid, messages, stop=None) -> list:
    """Flower's ``send_and_receive`` that also ends when ``stop`` (a ``threading.Event``) is set."""
    ids = set(grid.push_messages(list(messages)))
    replies = []
    while ids:
        got = list(grid.pull_messages(ids))
        replies += got
        ids -= {m.metadata.reply_to_message_id for m in got}
        if ids:
            if stop is not None and stop.is_set():
                raise RunStopped("the fleet run was stopped")
            time.sleep(PULL_INTERVAL)
    return replies


def evaluate_global(spec: FleetSpec, arrays: dict, kind: str) -> dict:
    """The global model on the source's pooled test set: ``accuracy`` or ``mse``."""
    x, y = spec.source.global_test()
    if kind == "float":
        from ..reference.twin import float_twin
        from .local import load_float

        net = float_twin(spec.template)
        load_float(net, arrays)
        r = evaluate_float(net, spec.template, x, y, spec.task, spec.target_exponent)
    else:
        model = copy.deepcopy(spec.template)
        set_params(model, arrays_model(arrays, [p.name for p in spec.template.parameters()]))
        r = evaluate_device(model, x, y, spec.task, spec.target_exponent)
    if spec.task == "classification":
        return {"accuracy": r["correct"] / max(r["count"], 1)}
    return {"mse": r["sse"] / max(r["count"], 1)}


def wait_for_nodes(grid, count: int, timeout: float = NODE_WAIT_SECONDS, stop=None) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= count:
            return nodes
        if stop is not None and stop.is_set():
            raise RunStopped("the fleet run was stopped")
        if time.monotonic() > deadline:
            raise FleetError(f"only {len(nodes)} of {count} Flower SuperNodes connected in {timeout:.0f} s")
        time.sleep(0.05)


def run_strategy(spec: FleetSpec, strategy, grid, kind: str, on_round=None, stop=None) -> dict:
    """Run ``spec.rounds`` rounds of ``strategy`` on ``grid``; the run's record."""
    from flwr.app import ConfigRecord

    from .strategies import initial_arrays

    arrays = initial_arrays(spec, kind)
    history = [{"round": 0, **evaluate_global(spec, from_record(arrays), kind), "bytes_up": 0, "bytes_down": 0,
                "seconds": 0.0}]
    device_metrics = None
    for r in range(1, spec.rounds + 1):
        t0 = time.perf_counter()
        replies = exchange(grid, strategy.configure_train(r, arrays, ConfigRecord(), grid), stop)
        arrays, metrics = strategy.aggregate_train(r, replies)
        seconds = time.perf_counter() - t0
        record = {"round": r, **evaluate_global(spec, from_record(arrays), kind),
                  "train_loss": float(metrics["train_loss"]), "devices": int(metrics["devices"]),
                  "bytes_up": int(metrics["bytes_up"]), "bytes_down": int(metrics["bytes_down"]),
                  "seconds": seconds}
        evaluate = strategy.configure_evaluate(r, arrays, ConfigRecord(), grid)
        if evaluate:
            device_metrics = strategy.aggregate_evaluate(r, exchange(grid, evaluate, stop))
            if device_metrics is not None:
                record.update({k: float(v) for k, v in device_metrics.items() if k != "count"})
        history.append(record)
        if on_round is not None:
            on_round(kind, record)
    return {"arrays": from_record(arrays), "history": history}


def make_server_app(spec: FleetSpec, out: dict, compare_float: bool = False, on_round=None, stop=None):
    """The ``flwr.serverapp.ServerApp``; results (or the error) land in ``out``; setting the
    ``stop`` event ends it between two polls."""
    from flwr.serverapp import ServerApp

    from .strategies import make_strategy

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        try:
            wait_for_nodes(grid, spec.nodes, stop=stop)
            runs = [spec.strategy]
            if compare_float and spec.strategy != "fedavg-float":
                runs.append("fedavg-float")
            for name in runs:
                kind = "float" if name == "fedavg-float" else "integer"
                out[name] = run_strategy(spec, make_strategy(spec, name), grid, kind, on_round, stop)
        except BaseException as exc:  # carried to the caller of run_simulation, re-raised there
            out["error"] = exc

    return app
