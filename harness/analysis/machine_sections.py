"""The report's sections on the machines: what each is and what it ran with, the runs on it,
its model (the best products and the copy bandwidth by working set) and the cases it did not
time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.analysis.runs import runs_table
from harness.escape import for_markdown, for_markdown_code
from harness.machine.environment import gpu_label
from harness.machine.model import MachineModel, Peak
from harness.markdown import markdown_table
from harness.records.store import MachineView


def environment(benches: Sequence[MachineView]) -> str:
    """One row per machine (what it is and what it ran with), then one per run on it."""
    machines = []
    for doc in benches:
        row = _machine(doc)
        if row not in machines:
            machines.append(row)
    return "\n".join(
        [
            markdown_table(
                ["machine", "CPU", "cores", "GPU", "Python", "libraries", "OPENBLAS_CORETYPE"],
                machines,
            ),
            "",
            "Runs:",
            "",
            runs_table(benches),
        ]
    )


def _machine(doc: MachineView) -> list[Any]:
    env = doc.environment
    libs = env.libraries
    shown = ("numpy", "torch", "tensorflow", "onnxruntime")
    hosts = [h for h in doc.hosts if h != env.machine]
    return [
        f"{env.machine} ({', '.join(hosts)})" if hosts else env.machine,
        env.cpu["model"],
        env.cpu["logical_cores"],
        gpu_label(env.gpu),
        env.python,
        ", ".join(f"{k} {libs[k]}" for k in shown if k in libs),
        env.environment_variables.get("OPENBLAS_CORETYPE") or "unset",
    ]


def _theory(peak: Peak) -> str:
    if peak.theoretical is None:
        return peak.theoretical_note
    return f"{peak.theoretical / 1e9:.0f} ({peak.theoretical_note})"


def machine_model(model: MachineModel) -> str:
    """Compute peaks and copy bandwidth per machine ("" when the results hold neither)."""
    if not model.peaks and not model.memory:
        return ""
    peaks = [
        [m, d, dtype, t, f"{p.flops / 1e9:.1f}", p.backend, p.size, _theory(p)]
        for (m, d, dtype, t), p in sorted(model.peaks.items())
    ]
    parts = [
        "Compute: the best product measured over every size and backend in these results.",
        "",
        markdown_table(
            ["machine", "device", "dtype", "threads", "best GFLOP/s", "backend", "size"]
            + ["theoretical GFLOP/s"],
            peaks,
        ),
        "",
        "Memory: copy bandwidth by working set (read + write, as measured), where it lives, "
        "and the bound drawn from it for work on that many threads: what one thread moved, "
        "times the threads, at least the best of the larger working sets.",
        "",
        markdown_table(
            ["machine", "device", "threads", "working set", "measured GB/s", "backend"]
            + ["copy threads", "level", "bound GB/s", "caches"],
            [
                [m, d, t, f"{probe.size / 2**10:.0f} KiB", f"{probe.rate / 1e9:.1f}"]
                + [probe.backend, probe.copy_threads, mem.level_of(probe.size)[0]]
                + [f"{bound / 1e9:.1f}", mem.caches_note]
                for (m, d, t), mem in sorted(model.memory.items())
                for probe, (_, bound, _) in zip(mem.probes, mem.curve, strict=True)
            ],
        ),
        "",
    ]
    parts += [f"- {m}: {note}" for m, note in model.openblas.items()]
    return "\n".join(parts)


def cases_not_timed(benches: Sequence[MachineView]) -> str:
    lines = [
        f"- {for_markdown_code(r.id)} {r.status}: {for_markdown(r.reason)}{_predicted(r)}"
        for doc in benches
        for r in doc.cases
        if r.status != "ok"
    ]
    lines += [
        f"- {for_markdown_code(r.id)} {r.status} (no machine kept it): {for_markdown(r.reason)}"
        for doc in benches
        for r in doc.lost
    ]
    return "\n".join(lines)


def _predicted(case) -> str:
    """A solve that did not converge: what its prediction, made before it ran, said."""
    solve = case.parallel_in_time
    predicted = solve.prediction if solve is not None and not solve.converged else None
    if predicted is None:
        return ""
    if predicted.iterations is None:
        said = f"does not converge ({for_markdown(predicted.reason or '')}): agrees"
    else:
        said = f"converges in {predicted.iterations} iterations: disagrees"
    return f"; predicted before it ran: {said}"
