"""The report's sections, each (title, Markdown body), from the analysis and the results
documents: the answer per machine, a table of contents, then the details: findings, machines
and one table per measure."""

from __future__ import annotations

from typing import Any

from harness.analysis import answer_figure, invariants, parity_files, trained
from harness.analysis.answer import answers
from harness.analysis.answer import markdown as answer_markdown
from harness.analysis.findings import findings_markdown, headline, is_standard
from harness.analysis.own_model_view import sections as own_model_sections
from harness.analysis.parallel_in_time import TITLE as PARALLEL_IN_TIME
from harness.analysis.parallel_in_time_views import AMDAHL_RESTATED
from harness.analysis.parallel_in_time_views import markdown as parallel_in_time
from harness.escape import for_markdown, for_markdown_code
from harness.machine.environment import gpu_label
from harness.markdown import field, fields, markdown_table, percent, table_of
from harness.stats import format_interval, format_ratio, format_seconds

ROOFLINE_NOTE = (
    "Bound = max(every FLOP of one step (x.W, h.R, the gate math) / the best product measured, "
    "bytes of R + input gates + states / the copy bandwidth measured at the level where the "
    "step's working set (R and the states) fits). The measured cost is the slope b of "
    "latency = a + b*T, which includes the input projection. Without cache sizes or a copy "
    "probe that small the memory term is unknown and only the compute term bounds."
)
INCONSISTENT = "inconsistent (see Inconsistencies)"
INTERVALS_NOTE = (
    "Medians carry their 95% interval from order statistics of the rounds; ratios of two cases "
    "timed in one interleaved group pair their rounds (median of the per-round ratios), other "
    "ratios are a bootstrap of the ratio of medians."
)


def sections(
    result: dict[str, Any], benches, audit_table: str, plots: bool = False
) -> list[tuple[str, str]]:
    """The report's sections in order, each only where the results hold its data: a user's
    models first, then the built-in suites' measures."""
    findings = headline(result)
    rows = result["rows"]
    out = [
        ("Findings in full", findings_markdown(findings) if findings else ""),
        *own_model_sections(result),
        (parity_files.TITLE, parity_files.markdown(result.get("parity_files", []))),
        (trained.TITLE, trained.markdown(result["trained"]) if result.get("trained") else ""),
        ("Machines", environment(benches)),
        (
            "Standard case: LSTM B=32 T=100 I=128 H=256 float32",
            standard_case(result) if any(is_standard(r) for r in rows) else "",
        ),
        (
            "Latency = a + b*T (a: fixed cost per call, b: per step)",
            step_fits(result) if result["fits"] else "",
        ),
        (
            "Batch scaling (latency(B) / latency(1); tokens = B*T per second)",
            batch(result) if result["batch"] else "",
        ),
        ("Machine model: compute peaks and memory bandwidth", _machine_model(result)),
        (
            "Recurrence penalty (RNN / the same FLOPs as one product)",
            penalty(result) if result["penalties"] or result["without_baseline"] else "",
        ),
        (
            "Roofline of one recurrent step",
            ROOFLINE_NOTE + "\n\n" + roofline(result) if result["roofline"] else "",
        ),
        *(over_time(result) if result["amdahl"] or result.get("parallel_in_time") else []),
        ("GRU against minGRU", mingru(result) if result["mingru"] else ""),
        ("CPU against GPU", crossover(result) if result["crossover"] else ""),
        ("Inconsistencies", invariants.markdown(result["inconsistencies"]) if rows else ""),
        ("ONNX export forms (from the parity report)", audit_table),
        ("Cases not timed", cases_not_timed(benches)),
    ]
    details = [(title, text) for title, text in out if text]
    return [*answer_sections(result), ("Contents", contents(details, plots)), *details]


def answer_title(machine: str) -> str:
    return f"The answer on {machine}"


def answer_sections(result: dict[str, Any]) -> list[tuple[str, str]]:
    """One section per machine: its sentences, then its figure when the data draws one."""
    out = []
    for machine, sentences in answers(result):
        text = answer_markdown(sentences)
        if answer_figure.has_data(result, machine):
            name = figure_name(machine)
            text += f"\n\n![{answer_figure.CAPTION}](img/{name}.png)"
        out.append((answer_title(machine), text + "\n\n" + INTERVALS_NOTE))
    return out


def figure_name(machine: str) -> str:
    """A file name per machine label: its letters and digits, and a digest of the whole label
    (so that labels differing only in punctuation get files of their own)."""
    import hashlib

    digest = hashlib.sha256(machine.encode()).hexdigest()[:6]
    return "answer_" + "".join(c if c.isalnum() else "_" for c in machine) + "_" + digest


def contents(details: list[tuple[str, str]], plots: bool) -> str:
    titles = [title for title, _ in details] + (["Plots"] if plots else [])
    return "\n".join(f"- [{for_markdown(title)}](#{anchor(title)})" for title in titles)


def anchor(title: str) -> str:
    """The id GitHub (and harness.analysis.html) gives a heading: lower case, punctuation
    dropped, spaces as hyphens."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _machine_model(result: dict[str, Any]) -> str:
    model = result["machine"]
    return machine_model(result) if model["peaks"] or model["memory"] else ""


def environment(benches) -> str:
    """One row per machine (what it is and what it ran with), then one per run on it."""
    machines = []
    for doc in benches:
        row = _machine(doc)
        if row not in machines:
            machines.append(row)
    runs = [
        [doc.environment.get("machine"), doc.suite.name, len(doc.cases), _wall(doc)]
        + [((doc.environment.get("git") or {}).get("commit") or "")[:10] or "not recorded"]
        for doc in benches
    ]
    return "\n".join(
        [
            markdown_table(
                ["machine", "CPU", "cores", "GPU", "Python", "libraries", "OPENBLAS_CORETYPE"],
                machines,
            ),
            "",
            "Runs:",
            "",
            markdown_table(["machine", "suite", "cases", "wall", "commit"], runs),
        ]
    )


def _wall(doc) -> str:
    """The run's wall time; with the machine's own time on its groups where the records
    have it (a machine of a Dask run is busy for part of the run)."""
    wall = f"{doc.wall_s or 0:.0f} s"
    runs = {r.group_run: r.group_s for r in doc.cases}
    if not runs or None in runs or None in runs.values():
        return wall
    return f"{sum(runs.values()):.0f} s busy of {wall}"


def _machine(doc) -> list[Any]:
    env = doc.environment
    libs = env.get("libraries", {})
    shown = ("numpy", "torch", "tensorflow", "onnxruntime")
    hosts = [h for h in doc.hosts if h != env.get("machine")]
    return [
        f"{env.get('machine')} ({', '.join(hosts)})" if hosts else env.get("machine"),
        env["cpu"]["model"],
        env["cpu"]["logical_cores"],
        gpu_label(env.get("gpu")),
        env.get("python"),
        ", ".join(f"{k} {libs[k]}" for k in shown if k in libs),
        env["environment_variables"].get("OPENBLAS_CORETYPE") or "unset",
    ]


def standard_case(result: dict[str, Any]) -> str:
    share = {(r["machine"], r["id"]): r["fraction_of_peak"] for r in result["efficiency"]}
    rows = sorted(
        (r for r in result["rows"] if is_standard(r)),
        key=lambda r: (r["machine"], r["mode"], r["median"]),
    )
    columns = fields("machine", "backend", "mode", "threads") + [
        ("implementation", field("impl_class")),
        ("median [95% interval]", lambda r: format_interval(r["median_ci"])),
        ("IQR", lambda r: f"{100 * r['iqr'] / r['median']:.0f}%"),
        ("GFLOP/s", lambda r: f"{r['flops'] / r['median'] / 1e9:.1f}"),
        ("% of best product", lambda r: share_of_peak(share.get((r["machine"], r["id"])))),
    ]
    return table_of(columns, rows)


def share_of_peak(value: float | None) -> str:
    return INCONSISTENT if value is not None and value > 1 else percent(value)


def step_fits(result: dict[str, Any]) -> str:
    columns = fields("machine", "backend", "mode", "cell") + [
        ("B", field("batch")),
        ("H", field("hidden")),
        ("threads", field("threads")),
        ("a", lambda f: format_seconds(f["a"])),
        ("b (per step)", lambda f: format_seconds(f["b"])),
        ("R^2", lambda f: f"{f['r2']:.3f}"),
        ("T measured", lambda f: ",".join(str(p[0]) for p in f["points"])),
    ]
    return table_of(columns, result["fits"])


def batch(result: dict[str, Any]) -> str:
    def points(series):
        return "; ".join(
            f"{p['batch']}: {format_ratio(p['relative_ci'])}, {p['tokens_per_s']:.3g}/s"
            for p in series["points"]
        )

    columns = fields("machine", "backend", "mode", "cell") + [
        ("T", field("steps")),
        ("B: relative latency [95% interval], tokens/s", points),
    ]
    return table_of(columns, result["batch"])


def _held(name: str):
    """A penalty with its interval, or 'inconsistent' where the RNN beat that product."""
    return lambda p: format_ratio(p[f"{name}_ci"]) if p[name] >= 1 else INCONSISTENT


def penalty(result: dict[str, Any]) -> str:
    rows = sorted(
        result["penalties"], key=lambda p: (p["machine"], p["backend"], p["batch"], p["steps"])
    )
    columns = fields("machine", "backend", "cell") + [
        ("B", field("batch")),
        ("T", field("steps")),
        ("H", field("hidden")),
        ("L", field("layers")),
        ("threads", field("threads")),
        ("RNN", lambda p: format_interval(p["median_ci"])),
        ("own backend's product", lambda p: format_interval(p["gemm_median_ci"])),
        ("penalty [95% interval]", _held("penalty")),
        ("best product", lambda p: f"{format_interval(p['best_median_ci'])} ({p['best_backend']})"),
        ("penalty against the best", _held("best_penalty")),
    ]
    text = table_of(columns, rows)
    if result["without_baseline"]:
        text += "\n\nKept out (no product is their baseline; implementation as recorded):\n\n"
        text += "\n".join(
            f"- {w['backend']} ({w['impl_class']}): {w['reason']}"
            for w in result["without_baseline"]
        )
    return text


def _theory(peak) -> str:
    if peak.theoretical is None:
        return peak.theoretical_note
    return f"{peak.theoretical / 1e9:.0f} ({peak.theoretical_note})"


def machine_model(result: dict[str, Any]) -> str:
    model = result["machine"]
    peaks = [
        [m, d, dtype, t, f"{p.flops / 1e9:.1f}", p.backend, p.size, _theory(p)]
        for (m, d, dtype, t), p in sorted(model["peaks"].items())
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
                for (m, d, t), mem in sorted(model["memory"].items())
                for probe, (_, bound, _) in zip(mem.probes, mem.curve, strict=True)
            ],
        ),
        "",
    ]
    parts += [f"- {m}: {note}" for m, note in model["openblas"].items()]
    return "\n".join(parts)


def roofline(result: dict[str, Any]) -> str:
    columns = fields("machine", "backend", "cell") + [
        ("B", field("batch")),
        ("H", field("hidden")),
        ("threads", field("threads")),
        ("measured b", lambda r: format_seconds(r["step_s"])),
        ("step GFLOP", lambda r: f"{r['step_flops'] / 1e9:.4f}"),
        ("compute bound", lambda r: format_seconds(r["compute_bound_s"])),
        ("level", field("level")),
        (
            "memory bound",
            lambda r: format_seconds(r["memory_bound_s"]) if r["memory_bound_s"] else "unknown",
        ),
        ("limited by", field("limited_by")),
        (
            "measured / bound",
            lambda r: f"{r['times_bound']:.2f}x" if r["times_bound"] >= 1 else INCONSISTENT,
        ),
    ]
    return table_of(columns, result["roofline"])


def amdahl(result: dict[str, Any]) -> str:
    columns = [
        ("cell", field("cell")),
        ("I", field("input_size")),
        ("H", field("hidden")),
        ("layers", field("layers")),
        ("parallel share (input projection)", lambda a: percent(a["parallel_share"])),
        ("serial share (h @ R)", lambda a: percent(a["serial_share"])),
        ("max speed-up, h @ R step by step", lambda a: f"{a['max_speedup']:.2f}x"),
    ]
    return table_of(columns, result["amdahl"])


def over_time(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The Amdahl row, restated as what it bounds (methods that keep h @ R step by step), and
    the measured answer for Newton's method in time when the inputs hold a sweep or timings."""
    solves = result.get("parallel_in_time")
    missing = ": no parallel-in-time sweep or timing among these inputs measures it."
    note = AMDAHL_RESTATED + (": the next section measures it." if solves else missing)
    title = "Amdahl: what parallelising over time can buy while h @ R runs step by step"
    out = [(title, note + "\n\n" + amdahl(result))]
    if solves:
        out.append((PARALLEL_IN_TIME, parallel_in_time(solves)))
    return out


def mingru(result: dict[str, Any]) -> str:
    def median_of(label):
        return lambda m: format_interval(m[f"{label}_ci"]) if label in m else ""

    def ratio_of(name):
        return lambda m: format_ratio(m[name]) if name in m else ""

    columns = fields("machine", "backend") + [
        ("B", field("batch")),
        ("H", field("hidden")),
        ("T", field("steps")),
        ("GRU", median_of("gru")),
        ("minGRU scan", median_of("mingru-scan")),
        ("minGRU loop", median_of("mingru-loop")),
        ("scan / GRU", ratio_of("scan_over_gru")),
        ("scan / loop", ratio_of("scan_over_loop")),
    ]
    return table_of(columns, result["mingru"])


def crossover(result: dict[str, Any]) -> str:
    if not result["crossover"]:
        return (
            "No shape was timed on both a CPU and a GPU in these results: give a GPU run's "
            "results file too."
        )
    columns = fields("cell") + [
        ("B", field("batch")),
        ("T", field("steps")),
        ("H", field("hidden")),
        ("best CPU", field("cpu")),
        ("time", lambda c: format_interval(c["cpu_ci"])),
        ("best GPU", field("gpu")),
        ("time", lambda c: format_interval(c["gpu_ci"])),
        ("GPU speed-up [95% interval]", lambda c: format_ratio(c["gpu_speedup_ci"])),
    ]
    return table_of(columns, result["crossover"])


def cases_not_timed(benches) -> str:
    lines = [
        f"- {for_markdown_code(r.id)} {r.status}: {for_markdown(r.reason)}"
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
