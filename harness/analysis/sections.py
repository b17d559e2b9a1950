"""The report's sections, each (title, Markdown body), from the analysis and the results
documents: findings, machines, then one table per measure."""

from __future__ import annotations

from typing import Any

from harness.analysis.findings import findings_markdown, headline, is_standard
from harness.analysis.parallel_time import TITLE as PARALLEL_IN_TIME
from harness.analysis.parallel_time_views import AMDAHL_RESTATED
from harness.analysis.parallel_time_views import markdown as parallel_in_time
from harness.analysis.tables import field, fields, markdown_table, percent, table_of
from harness.bench.stats import format_interval as _ti
from harness.bench.stats import format_ratio
from harness.bench.stats import format_seconds as _t

ROOFLINE_NOTE = (
    "Bound = max(step FLOPs / measured peak, bytes of R + states / measured copy bandwidth). "
    "The copy probe measures DRAM: an R that stays in cache (H=256 LSTM: 1 MiB) can run under "
    "this bound."
)
INTERVALS_NOTE = (
    "Medians carry their 95% interval from order statistics of the rounds; ratios of two cases "
    "timed in one interleaved group pair their rounds (median of the per-round ratios), other "
    "ratios are a bootstrap of the ratio of medians."
)


def sections(result: dict[str, Any], benches, audit_table: str) -> list[tuple[str, str]]:
    out = [
        ("Findings", INTERVALS_NOTE + "\n\n" + findings_markdown(headline(result))),
        ("Machines", environment(benches)),
        ("Standard case: LSTM B=32 T=100 I=128 H=256 float32", standard_case(result)),
        ("Latency = a + b*T (a: fixed cost per call, b: per step)", step_fits(result)),
        ("Batch scaling (latency(B) / latency(1); tokens = B*T per second)", batch(result)),
        ("Recurrence penalty (RNN / the same FLOPs as one product, same library)", penalty(result)),
        ("Roofline of one recurrent step", ROOFLINE_NOTE + "\n\n" + roofline(result)),
        *time_parallelism(result),
        ("GRU against minGRU", mingru(result)),
        ("CPU against GPU", crossover(result)),
    ]
    if audit_table:
        out.append(("ONNX export forms (from the parity report)", audit_table))
    not_timed = cases_not_timed(benches)
    if not_timed:
        out.append(("Cases not timed", not_timed))
    return out


def environment(benches) -> str:
    return markdown_table(
        ["machine", "CPU", "cores", "GPU", "Python", "libraries", "OPENBLAS_CORETYPE"]
        + ["suite", "wall", "commit"],
        [_machine(doc) for doc in benches],
    )


def _machine(doc: dict[str, Any]) -> list[Any]:
    env = doc["environment"]
    libs = env.get("libraries", {})
    shown = ("numpy", "torch", "tensorflow", "onnxruntime")
    return [
        env.get("machine"),
        env["cpu"]["model"],
        env["cpu"]["logical_cores"],
        (env.get("gpu") or {}).get("name", "none"),
        env.get("python"),
        ", ".join(f"{k} {libs[k]}" for k in shown if k in libs),
        env["environment_variables"].get("OPENBLAS_CORETYPE") or "unset",
        doc["suite"]["name"],
        f"{doc.get('wall_s') or 0:.0f} s",
        (env.get("git") or {}).get("commit", "")[:10],
    ]


def standard_case(result: dict[str, Any]) -> str:
    share = {(r["machine"], r["id"]): r["fraction_of_peak"] for r in result["efficiency"]}
    rows = sorted(
        (r for r in result["rows"] if is_standard(r)),
        key=lambda r: (r["machine"], r["mode"], r["median"]),
    )
    columns = fields("machine", "target", "mode", "threads") + [
        ("implementation", field("impl_class")),
        ("median [95% interval]", lambda r: _ti(r["median_ci"])),
        ("IQR", lambda r: f"{100 * r['iqr'] / r['median']:.0f}%"),
        ("GFLOP/s", lambda r: f"{r['flops'] / r['median'] / 1e9:.1f}"),
        ("% of peak", lambda r: percent(share.get((r["machine"], r["id"])))),
    ]
    return table_of(columns, rows)


def step_fits(result: dict[str, Any]) -> str:
    columns = fields("machine", "target", "mode", "cell") + [
        ("B", field("batch")),
        ("H", field("hidden")),
        ("threads", field("threads")),
        ("a", lambda f: _t(f["a"])),
        ("b (per step)", lambda f: _t(f["b"])),
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

    columns = fields("machine", "target", "mode", "cell") + [
        ("T", field("steps")),
        ("B: relative latency [95% interval], tokens/s", points),
    ]
    return table_of(columns, result["batch"])


def penalty(result: dict[str, Any]) -> str:
    rows = sorted(
        result["penalties"], key=lambda p: (p["machine"], p["target"], p["batch"], p["steps"])
    )
    columns = fields("machine", "target", "cell") + [
        ("B", field("batch")),
        ("T", field("steps")),
        ("H", field("hidden")),
        ("L", field("layers")),
        ("threads", field("threads")),
        ("RNN", lambda p: _ti(p["median_ci"])),
        ("one product", lambda p: _ti(p["gemm_median_ci"])),
        ("penalty [95% interval]", lambda p: format_ratio(p["penalty_ci"])),
    ]
    return table_of(columns, rows)


def roofline(result: dict[str, Any]) -> str:
    columns = fields("machine", "target", "cell") + [
        ("B", field("batch")),
        ("H", field("hidden")),
        ("measured b", lambda r: _t(r["step_s"])),
        ("compute bound", lambda r: _t(r["compute_bound_s"])),
        ("memory bound", lambda r: _t(r["memory_bound_s"])),
        ("limited by", field("limited_by")),
        ("measured / bound", lambda r: f"{r['times_bound']:.2f}x"),
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


def time_parallelism(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The Amdahl row, restated as what it bounds (methods that keep h @ R step by step), and
    the measured answer for Newton's method in time when the inputs hold a sweep or timings."""
    pit = result.get("pit")
    missing = ": no parallel-in-time sweep or timing among these inputs measures it."
    note = AMDAHL_RESTATED + (": the next section measures it." if pit else missing)
    title = "Amdahl: what parallelising over time can buy while h @ R runs step by step"
    out = [(title, note + "\n\n" + amdahl(result))]
    if pit:
        out.append((PARALLEL_IN_TIME, parallel_in_time(pit)))
    return out


def mingru(result: dict[str, Any]) -> str:
    def median_of(label):
        return lambda m: _ti(m[f"{label}_ci"]) if label in m else ""

    def ratio_of(name):
        return lambda m: format_ratio(m[name]) if name in m else ""

    columns = fields("machine", "target") + [
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
        ("time", lambda c: _ti(c["cpu_ci"])),
        ("best GPU", field("gpu")),
        ("time", lambda c: _ti(c["gpu_ci"])),
        ("GPU speed-up [95% interval]", lambda c: format_ratio(c["gpu_speedup_ci"])),
    ]
    return table_of(columns, result["crossover"])


def cases_not_timed(benches) -> str:
    return "\n".join(
        f"- `{r['id']}` {r['status']}: {r['reason']}"
        for doc in benches
        for r in doc["cases"]
        if r["status"] != "ok"
    )
