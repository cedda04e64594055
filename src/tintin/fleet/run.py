"""``run_fleet(config) -> FleetResult``: a fleet trained in Flower's simulation engine on Ray.

    from tintin.fleet import FleetConfig, run_fleet
    result = run_fleet(FleetConfig(dataset="digits", clients=10, rounds=3, strategy="fedavg"))
    print(result.test_accuracy, result.bytes_up_per_round, result.seconds_per_round)

The run builds a :class:`tintin.fleet.spec.FleetSpec`, a ClientApp (:mod:`tintin.fleet.client`)
and a ServerApp (:mod:`tintin.fleet.server`) and hands them to ``flwr.simulation.run_simulation``
with the Ray backend: ``nodes`` virtual SuperNodes, each ClientApp run on one CPU, Ray started
with ``num_cpus`` (2 by default) and shut down when the run ends. Flower's and Ray's logs are kept
out of the terminal (warnings and errors of the Flower logger excepted); the run reports each
round to ``on_round`` instead. Flower's telemetry is switched off (``FLWR_TELEMETRY_ENABLED=0``):
a run needs no network.
"""

from __future__ import annotations

import copy
import logging
import os
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..nn import Sequential
from ..optim import OptimConfig
from .devices import check_source
from .errors import FleetError
from .local import LocalPlan, fleet_model
from .partition import parse_scheme, partition_dataset
from .spec import STRATEGIES, FleetSpec

#: SuperNodes when ``nodes`` is not given: one per device up to this many
DEFAULT_MAX_NODES = 100
#: after Ctrl-C, how long Flower may take to end the round in flight before the process goes on
STOP_GRACE_SECONDS = 30.0


@dataclass
class FleetConfig:
    """A fleet run. Give ``dataset`` (a name, a data file path or a :class:`tintin.data.Dataset`)
    with ``partition`` and ``clients``, or any :class:`tintin.fleet.DeviceSource` as ``source``
    (then ``clients`` is its device count).

    ``model``: zoo name or a :class:`tintin.nn.Sequential`; ``strategy``: ``fedavg``, ``reptile``,
    ``fomaml`` (first-order MAML: needs ``shots`` and ``query_steps``) or ``fedavg-float``; ``fraction``: devices sampled per round; ``top_p``: percent of each tensor
    a device sends (None: dense); ``error_feedback``: devices keep what they did not send and
    add it to the next update (top-P% only); ``personal``: parameter or layer names kept on the devices;
    ``batch_size``, ``local_steps`` (None: one pass over the device's samples), ``lr``: local
    training; ``shots``: every device trains on a fresh seeded draw of that many of its samples
    each round (Reptile's few-shot inner task); ``query_steps``: FOMAML's steps on a disjoint query
    draw of ``query_shots`` samples (None: ``shots``) from the adapted weights; ``meta_lr``: Reptile's eps, decayed linearly over
    the rounds with ``meta_anneal``; ``compare_float``: also run float FedAvg in the same
    simulation; ``emulated``: ``{device: target}``, devices whose local update runs as the generated C
    program on an emulated microcontroller (e.g. ``{0: "cortex-m0"}``: QEMU); ``nodes``: Flower SuperNodes (default ``min(clients, 100)``; several devices per
    node beyond that); ``num_cpus``: Ray's CPUs (one ClientApp per CPU)."""

    dataset: object = None
    source: object = None
    partition: str = "iid"
    clients: int = 10
    samples_per_device: int | None = None
    model: str | Sequential = "mlp"
    rounds: int = 3
    strategy: str = "fedavg"
    fraction: float = 1.0
    top_p: float | None = None
    error_feedback: bool = True
    personal: tuple[str, ...] = ()
    batch_size: int = 8
    local_steps: int | None = None
    lr: float = 0.05
    meta_lr: float = 0.5
    meta_anneal: bool = False
    shots: int | None = None
    query_steps: int = 0
    query_shots: int | None = None
    seed: int = 0
    compare_float: bool = False
    device_eval: bool = True
    nodes: int | None = None
    num_cpus: int = 2
    emulated: dict[int, str] = field(default_factory=dict)


@dataclass
class FleetResult:
    """What a fleet run measured. ``history``: one record per round (round 0 = the initial
    model): ``accuracy`` (or ``mse``), ``train_loss``, ``bytes_up``, ``bytes_down``, ``seconds``;
    ``float_history`` likewise for the float comparison. ``arrays``: the final global model
    (integer mantissas and ``.scale`` exponents, or float32 for ``fedavg-float``); ``model``: the
    same integer model as a :class:`tintin.nn.Sequential` (None for ``fedavg-float``)."""

    config: dict
    task: str
    history: list[dict]
    float_history: list[dict] | None
    arrays: dict[str, np.ndarray]
    seconds: float
    driver_max_rss_mb: float
    source: dict = field(default_factory=dict)
    #: the final global integer model (None for ``fedavg-float``)
    model: Sequential | None = None

    @property
    def _metric(self) -> str:
        return "accuracy" if self.task == "classification" else "mse"

    @property
    def test_accuracy(self) -> float | None:
        return self.history[-1].get("accuracy")

    @property
    def test_mse(self) -> float | None:
        return self.history[-1].get("mse")

    @property
    def float_test_accuracy(self) -> float | None:
        return None if self.float_history is None else self.float_history[-1].get("accuracy")

    @property
    def float_test_mse(self) -> float | None:
        return None if self.float_history is None else self.float_history[-1].get("mse")

    def _per_round(self, key: str, history=None) -> float:
        rounds = (history or self.history)[1:]
        return float(np.mean([r[key] for r in rounds])) if rounds else 0.0

    @property
    def bytes_up_per_round(self) -> float:
        return self._per_round("bytes_up")

    @property
    def bytes_down_per_round(self) -> float:
        return self._per_round("bytes_down")

    @property
    def seconds_per_round(self) -> float:
        return self._per_round("seconds")

    def to_dict(self) -> dict:
        c = self.config
        d = {"engine": "flower", "clients": c["clients"], "rounds": c["rounds"], "strategy": c["strategy"],
             "dataset": c["dataset"], "partition": c["partition"], "model": c["model"], "fraction": c["fraction"],
             "top_p": c["top_p"], "error_feedback": c["error_feedback"], "personal": list(c["personal"]),
             "nodes": c["nodes"], "seed": c["seed"], "shots": c.get("shots"), "meta_lr": c.get("meta_lr"),
             "meta_anneal": c.get("meta_anneal"), "query_steps": c.get("query_steps"),
             "query_shots": c.get("query_shots"),
             "emulated": c.get("emulated", {}), "task": self.task}
        if self.task == "classification":
            d["test_accuracy"] = self.test_accuracy
            if self.float_history is not None:
                d["float_test_accuracy"] = self.float_test_accuracy
        else:
            d["test_mse"] = self.test_mse
            if self.float_history is not None:
                d["float_test_mse"] = self.float_test_mse
        last = self.history[-1]
        for key in ("device_test_accuracy", "device_test_mse"):
            if key in last:
                d[key] = last[key]
        d.update(bytes_up_per_round=self.bytes_up_per_round, bytes_down_per_round=self.bytes_down_per_round,
                 seconds_per_round=self.seconds_per_round, seconds=self.seconds,
                 driver_max_rss_mb=self.driver_max_rss_mb, history=self.history, source=self.source)
        if self.float_history is not None:
            d["float_history"] = self.float_history
            d["float_bytes_up_per_round"] = self._per_round("bytes_up", self.float_history)
        return d


def resolve_personal(model: Sequential, names) -> tuple[str, ...]:
    """Parameter names of ``names`` (parameter names, or layer names meaning all their parameters)."""
    params = [p.name for p in model.parameters()]
    out = []
    for n in names:
        hit = [p for p in params if p == n or p.startswith(n + ".")]
        if not hit:
            raise FleetError(f"--personal {n}: no such parameter or layer ({', '.join(params)})")
        out += hit
    out = tuple(dict.fromkeys(out))
    if len(out) == len(params):
        raise FleetError("--personal covers every parameter: nothing would be shared")
    return out


def _check(config: FleetConfig) -> None:
    if config.strategy not in STRATEGIES:
        raise FleetError(f"unknown strategy {config.strategy!r} ({', '.join(STRATEGIES)})")
    if config.source is None and config.clients < 1:
        raise FleetError(f"--clients must be at least 1, got {config.clients}")
    if config.rounds < 1:
        raise FleetError(f"--rounds must be at least 1, got {config.rounds}")
    if not 0 < config.fraction <= 1:
        raise FleetError(f"--fraction must be in (0, 1], got {config.fraction}")
    if config.top_p is not None and not 0 < config.top_p <= 100:
        raise FleetError(f"--top-p must be in (0, 100], got {config.top_p}")
    if config.top_p is not None and config.strategy == "fedavg-float":
        raise FleetError("--top-p applies to integer strategies, not fedavg-float")
    if config.personal and config.strategy == "fedavg-float":
        raise FleetError("--personal applies to integer strategies, not fedavg-float")
    if config.batch_size < 1:
        raise FleetError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.local_steps is not None and config.local_steps < 1:
        raise FleetError(f"--local-steps must be at least 1, got {config.local_steps}")
    if not config.lr > 0:
        raise FleetError(f"--lr must be positive, got {config.lr}")
    if not 0 < config.meta_lr <= 1:
        raise FleetError(f"--meta-lr must be in (0, 1], got {config.meta_lr}")
    if config.shots is not None and config.shots < 1:
        raise FleetError(f"--shots must be at least 1, got {config.shots}")
    if isinstance(config.query_steps, bool) or not isinstance(config.query_steps, int) or config.query_steps < 0:
        raise FleetError(f"--query-steps must be a non-negative integer, got {config.query_steps!r}")
    if config.query_shots is not None and (isinstance(config.query_shots, bool) or not isinstance(
            config.query_shots, int) or config.query_shots < 1):
        raise FleetError(f"--query-shots must be an integer >= 1, got {config.query_shots!r}")
    if config.query_shots is not None and config.strategy != "fomaml":
        raise FleetError("--query-shots applies to --strategy fomaml only")
    if config.strategy == "fomaml":
        if config.shots is None:
            raise FleetError("fomaml needs --shots (the K-sample support draw; the query draw is the next K)")
        if config.query_steps < 1:
            raise FleetError("fomaml needs --query-steps of at least 1")
        if config.emulated:
            raise FleetError("emulated devices run fedavg and reptile, not fomaml's query steps")
    elif config.query_steps:
        raise FleetError("--query-steps applies to --strategy fomaml only")
    if config.nodes is not None and config.nodes < 1:
        raise FleetError(f"--nodes must be at least 1, got {config.nodes}")
    if config.num_cpus < 1:
        raise FleetError(f"num_cpus must be at least 1, got {config.num_cpus}")
    if (config.dataset is None) == (config.source is None):
        raise FleetError("give either a data set (with a partition) or a device source")
    parse_scheme(config.partition)


def build_spec(config: FleetConfig) -> tuple[FleetSpec, dict]:
    """The checked :class:`FleetSpec` of ``config`` and a description of its devices."""
    _check(config)
    if config.source is not None:
        source = config.source
        check_source(source)
        describe = {"name": source.name, "synthetic": bool(source.synthetic)}
    else:
        dataset = config.dataset
        if isinstance(dataset, (str, os.PathLike)):
            from ..data import resolve_dataset

            dataset = resolve_dataset(dataset)
        source = partition_dataset(dataset, config.clients, config.partition, config.seed,
                                   samples_per_device=config.samples_per_device)
        sizes = source.sizes()
        describe = {"name": source.name, "synthetic": bool(source.synthetic),
                    "samples_per_device_min": int(sizes.min()), "samples_per_device_max": int(sizes.max())}
    template = fleet_model(config.model, source, config.seed)
    personal = resolve_personal(template, config.personal)
    try:
        optim = OptimConfig(lr=config.lr)
    except ValueError as exc:
        raise FleetError(str(exc)) from None
    plan = LocalPlan(batch_size=config.batch_size, local_steps=config.local_steps, optim=optim, shots=config.shots,
                     query_steps=config.query_steps, query_shots=config.query_shots)
    n = int(source.num_devices)
    nodes = min(n, config.nodes or DEFAULT_MAX_NODES)
    emulated = _check_emulated(config, n)
    spec = FleetSpec(source=source, template=template, plan=plan, strategy=config.strategy, rounds=config.rounds,
                     fraction=config.fraction, top_p=config.top_p, error_feedback=config.error_feedback,
                     personal=personal, meta_lr=config.meta_lr, meta_anneal=config.meta_anneal,
                     seed=config.seed, nodes=nodes, device_eval=config.device_eval, emulated=emulated)
    return spec, describe


def _check_emulated(config: FleetConfig, devices: int) -> tuple[tuple[int, str], ...]:
    """``config.emulated`` as sorted ``(device, target)`` pairs, checked (device range, known
    target with its toolchain installed, an integer strategy)."""
    if not config.emulated:
        return ()
    if config.strategy == "fedavg-float":
        raise FleetError("emulated devices train integer models, not fedavg-float")
    from ..targets import toolchain_status

    out = []
    for device, target in sorted(dict(config.emulated).items()):
        if isinstance(device, bool) or not isinstance(device, (int, np.integer)) or not 0 <= int(device) < devices:
            raise FleetError(f"emulated device {device!r} is not one of the {devices} devices")
        if target == "host":
            raise FleetError("emulated devices run on an MCU target (cortex-m0, cortex-m3, cortex-m4, ...), not host")
        ok, reason = toolchain_status(target)  # UnknownTargetError (one line) for a bad name
        if not ok:
            raise FleetError(f"emulated device {device}: {reason}")
        out.append((int(device), str(target)))
    return tuple(out)


def _quiet_logs() -> dict:
    saved = {}
    for name in ("flwr", "ray"):
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.ERROR)
    return saved


def run_fleet(config: FleetConfig, on_round: Callable[[str, dict], None] | None = None) -> FleetResult:
    """Run a fleet in Flower's simulation engine; ``on_round(kind, record)`` after every round
    (``kind``: ``integer`` or ``float``)."""
    spec, describe = build_spec(config)
    if config.strategy == "fedavg-float" or config.compare_float:
        from ..reference.twin import _torch, float_twin

        _torch()
        try:
            float_twin(spec.template)
        except NotImplementedError as exc:
            raise FleetError(f"no float twin for the float comparison: {exc}") from None
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from flwr.simulation import run_simulation

    from .client import make_client_app
    from .server import make_server_app

    out: dict = {}
    stop = threading.Event()
    failures: list[BaseException] = []

    def simulate() -> None:
        try:
            run_simulation(
                server_app=make_server_app(spec, out, config.compare_float, on_round, stop),
                client_app=make_client_app(spec),
                num_supernodes=spec.nodes,
                backend_name="ray",
                backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                "init_args": {"num_cpus": int(config.num_cpus), "include_dashboard": False,
                                              "log_to_driver": False, "logging_level": logging.ERROR}},
            )
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    saved = _quiet_logs()
    t0 = time.perf_counter()
    # Flower runs in a daemon thread (its own threads inherit that), so Ctrl-C reaches this thread
    # at once: the stop event ends the ServerApp, Flower winds down, Ray is shut down
    runner = threading.Thread(target=simulate, name="flower-simulation", daemon=True)
    try:
        runner.start()
        while runner.is_alive():
            runner.join(0.2)
    except BaseException:
        stop.set()
        logging.getLogger("flwr").setLevel(logging.CRITICAL)
        runner.join(STOP_GRACE_SECONDS)
        raise
    finally:
        if not stop.is_set():
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)
        _shutdown_ray()
    if failures:
        raise failures[0]
    seconds = time.perf_counter() - t0
    if "error" in out:
        raise out["error"]
    main = out.get(config.strategy)
    if main is None:
        raise FleetError("the Flower simulation ended without a result")
    floats = out.get("fedavg-float") if config.strategy != "fedavg-float" else None
    record = {"clients": int(spec.source.num_devices), "rounds": config.rounds, "strategy": config.strategy,
              "dataset": describe["name"] if config.source is not None else str(getattr(config.dataset, "name", config.dataset)),
              "partition": config.partition if config.source is None else None,
              "model": config.model if isinstance(config.model, str) else config.model.name,
              "fraction": config.fraction, "top_p": config.top_p, "shots": config.shots,
              "meta_lr": config.meta_lr if config.strategy in ("reptile", "fomaml") else None,
              "meta_anneal": bool(config.meta_anneal) if config.strategy in ("reptile", "fomaml") else None,
              "query_steps": config.query_steps if config.strategy == "fomaml" else None,
              "query_shots": (config.query_shots or config.shots) if config.strategy == "fomaml" else None,
              "error_feedback": bool(config.error_feedback and config.top_p is not None), "personal": spec.personal, "nodes": spec.nodes,
              "emulated": {str(d): t for d, t in spec.emulated},
              "seed": config.seed}
    return FleetResult(config=record, task=spec.task, history=main["history"],
                       float_history=None if floats is None else floats["history"], arrays=main["arrays"],
                       seconds=seconds, driver_max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       source=describe,
                       model=None if config.strategy == "fedavg-float" else model_from_arrays(spec.template, main["arrays"]))


def model_from_arrays(template: Sequential, arrays: dict[str, np.ndarray]) -> Sequential:
    """A copy of ``template`` holding the integer parameters of ``arrays`` (``<name>`` mantissas,
    ``<name>.scale`` exponents, as a fleet run's global model)."""
    from .codec import arrays_model
    from .local import set_params

    model = copy.deepcopy(template)
    set_params(model, arrays_model(arrays, [p.name for p in template.parameters()]))
    return model


def _shutdown_ray() -> None:
    try:
        import ray
    except ImportError:  # pragma: no cover
        return
    if ray.is_initialized():
        ray.shutdown()
