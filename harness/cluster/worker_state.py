"""What a Dask worker process keeps between the groups it times: its machine's environment,
collected by its first probe, and the selfcheck its first group measured. The runner registers
WorkerState on every worker, present and future (register); a task or probe on the worker
reaches it with of(worker)."""

from __future__ import annotations

from distributed import WorkerPlugin

from harness.json_values import JsonObject

NAME = "rnnbench-worker-state"


class WorkerState(WorkerPlugin):
    # Registering again (a later run on the same workers) keeps the state the worker holds.
    idempotent = True

    def __init__(self) -> None:
        self.environment: JsonObject | None = None
        self.selfcheck: dict[str, float] | None = None


def register(client) -> None:
    client.register_plugin(WorkerState(), name=NAME)


def of(worker) -> WorkerState:
    try:
        return worker.plugins[NAME]
    except KeyError:
        raise RuntimeError(
            f"Dask worker {worker.address} holds no {NAME}: groups are sent by "
            "harness.cluster.runner, which registers it"
        ) from None
