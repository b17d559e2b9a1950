"""The report's words and tables, computed from the analysis: nothing here is typed in by hand.
Each section is (title, Markdown body)."""

from __future__ import annotations

from typing import Any

from harness.analysis.measures import first_win
from harness.bench.stats import format_seconds as _t  # a duration in the unit that fits

STANDARD = {
    "cell": "lstm",
    "batch": 32,
    "steps": 100,
    "input_size": 128,
    "hidden": 256,
    "layers": 1,
}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_standard(row) -> bool:
    return all(row[k] == v for k, v in STANDARD.items())


def headline(result: dict[str, Any]) -> list[str]:
    out = []
    rows = result["rows"]
    for machine in sorted({r["machine"] for r in rows}):
        mine = [r for r in rows if r["machine"] == machine]
        standard = sorted(
            (r for r in mine if _is_standard(r) and r["mode"] == "forward"),
            key=lambda r: r["median"],
        )
        if standard:
            ranked = ", ".join(
                f"{r['target']} (th{r['threads']}) {_t(r['median'])}" for r in standard[:4]
            )
            out.append(
                f"**{machine}**, standard LSTM case (B=32, T=100, I=128, H=256, float32) "
                f"forward, fastest first: {ranked}."
            )
            by_target = {(r["target"], r["threads"]): r["median"] for r in standard}
            for threads in sorted({t for _, t in by_target}):
                if ("numpy", threads) in by_target and ("torch-cpu", threads) in by_target:
                    ratio = by_target[("numpy", threads)] / by_target[("torch-cpu", threads)]
                    plural = "s" if threads > 1 else ""
                    out.append(
                        f"NumPy reference / torch eager on it ({threads} thread{plural}): "
                        f"**{ratio:.2f}x**."
                    )
        for fit in result["fits"]:
            if (
                fit["machine"] == machine
                and fit["mode"] == "forward"
                and fit["cell"] == "lstm"
                and fit["hidden"] == 256
                and fit["target"] in ("torch-cpu", "torch-cuda")
            ):
                out.append(
                    f"An LSTM step with H=256, B={fit['batch']} costs **{_t(fit['b'])}** "
                    f"in {fit['target']} (slope of latency = a + b*T, a = "
                    f"{_t(fit['a'])}, R^2 {fit['r2']:.3f})."
                )
        pens = [
            p
            for p in result["penalties"]
            if p["machine"] == machine
            and p["target"] in ("torch-cpu", "torch-cuda")
            and p["cell"] == "lstm"
        ]
        if pens:
            worst = max(pens, key=lambda p: p["penalty"])
            best = min(pens, key=lambda p: p["penalty"])
            out.append(
                f"Recurrence penalty in {worst['target']} (RNN time / the same FLOPs as "
                f"one product): up to **{worst['penalty']:.1f}x** (B={worst['batch']}, "
                f"T={worst['steps']}, H={worst['hidden']}), down to "
                f"{best['penalty']:.2f}x (B={best['batch']}, T={best['steps']}, "
                f"H={best['hidden']}, L={best['layers']})."
            )
        for roof in result["roofline"]:
            if roof["machine"] == machine and roof["batch"] == 1 and roof["hidden"] == 256:
                out.append(
                    f"Roofline of one B=1 step ({roof['target']}): measured "
                    f"{_t(roof['step_s'])} against a {roof['limited_by']}-bound "
                    f"{_t(roof['bound_s'])} ({roof['times_bound']:.2f}x the bound)."
                )
        mingru = [r for r in result["mingru"] if r["machine"] == machine]
        for target in sorted({r["target"] for r in mingru}):
            series = [r for r in mingru if r["target"] == target]
            over_gru = first_win(series, "mingru-scan", "gru")
            over_loop = first_win(series, "mingru-scan", "mingru-loop")
            longest = max(series, key=lambda r: r["steps"])
            text = (
                f"minGRU in {target}: its parallel scan beats GRU {_when(over_gru, series)}"
                f" and beats minGRU's own step loop {_when(over_loop, series)}"
            )
            if "mingru-loop" in longest:
                text += (
                    f" (T={longest['steps']}: scan {_t(longest['mingru-scan'])}, loop "
                    f"{_t(longest['mingru-loop'])}"
                    + (f", GRU {_t(longest['gru'])}" if "gru" in longest else "")
                    + ")"
                )
            out.append(text + ".")
    for row in result["amdahl"]:
        if row["cell"] in ("lstm", "gru") and (row["input_size"], row["hidden"], row["layers"]) == (
            128,
            256,
            1,
        ):
            out.append(
                f"{row['cell'].upper()} I=128, H=256: {100 * row['parallel_share']:.0f}% "
                "of the FLOPs (the input projection) can run in parallel over time; "
                f"Amdahl bounds any speed-up from that at {row['max_speedup']:.2f}x."
            )
    if result["crossover"]:
        wins = [c for c in result["crossover"] if c["gpu_speedup"] > 1]
        out.append(
            f"CPU against GPU on {len(result['crossover'])} shared shapes: the GPU wins "
            f"{len(wins)}."
        )
    return out


def _when(steps: int | None, series) -> str:
    if steps is None:
        return "at no T measured"
    if steps == min(r["steps"] for r in series):
        return f"at every T measured ({steps} to {max(r['steps'] for r in series)})"
    return f"from T = {steps}"


def _environment(benches) -> str:
    rows = []
    for doc in benches:
        env = doc["environment"]
        gpu = env.get("gpu") or {}
        libs = env.get("libraries", {})
        rows.append(
            [
                env.get("machine"),
                env["cpu"]["model"],
                env["cpu"]["logical_cores"],
                gpu.get("name", "none"),
                env.get("python"),
                ", ".join(
                    f"{k} {libs[k]}"
                    for k in ("numpy", "torch", "tensorflow", "onnxruntime")
                    if k in libs
                ),
                env["environment_variables"].get("OPENBLAS_CORETYPE") or "unset",
                doc["suite"]["name"],
                f"{doc.get('wall_s') or 0:.0f} s",
                (env.get("git") or {}).get("commit", "")[:10],
            ]
        )
    return _table(
        [
            "machine",
            "CPU",
            "cores",
            "GPU",
            "Python",
            "libraries",
            "OPENBLAS_CORETYPE",
            "suite",
            "wall",
            "commit",
        ],
        rows,
    )


def sections(result: dict[str, Any], benches, audit_table: str) -> list[tuple[str, str]]:
    eff = {r["id"] + r["machine"]: r for r in result["efficiency"]}
    out = [
        ("Findings", "\n".join(f"- {line}" for line in headline(result))),
        ("Machines", _environment(benches)),
    ]
    standard = [r for r in result["rows"] if _is_standard(r)]
    out.append(
        (
            "Standard case: LSTM B=32 T=100 I=128 H=256 float32",
            _table(
                [
                    "machine",
                    "target",
                    "mode",
                    "threads",
                    "implementation",
                    "median",
                    "IQR",
                    "GFLOP/s",
                    "% of peak",
                ],
                [
                    [
                        r["machine"],
                        r["target"],
                        r["mode"],
                        r["threads"],
                        r["impl_class"],
                        _t(r["median"]),
                        f"{100 * r['iqr'] / r['median']:.0f}%",
                        f"{r['flops'] / r['median'] / 1e9:.1f}",
                        _pct(eff.get(r["id"] + r["machine"], {}).get("fraction_of_peak")),
                    ]
                    for r in sorted(standard, key=lambda r: (r["machine"], r["mode"], r["median"]))
                ],
            ),
        )
    )
    out.append(
        (
            "Latency = a + b*T (a: fixed cost per call, b: per step)",
            _table(
                [
                    "machine",
                    "target",
                    "mode",
                    "cell",
                    "B",
                    "H",
                    "threads",
                    "a",
                    "b (per step)",
                    "R^2",
                    "T measured",
                ],
                [
                    [
                        f["machine"],
                        f["target"],
                        f["mode"],
                        f["cell"],
                        f["batch"],
                        f["hidden"],
                        f["threads"],
                        _t(f["a"]),
                        _t(f["b"]),
                        f"{f['r2']:.3f}",
                        ",".join(str(p[0]) for p in f["points"]),
                    ]
                    for f in result["fits"]
                ],
            ),
        )
    )
    out.append(
        (
            "Batch scaling (latency(B) / latency(1); tokens = B*T per second)",
            _table(
                ["machine", "target", "mode", "cell", "T", "B: relative latency, tokens/s"],
                [
                    [
                        s["machine"],
                        s["target"],
                        s["mode"],
                        s["cell"],
                        s["steps"],
                        "; ".join(
                            f"{p['batch']}: {p['relative']:.2f}x, {p['tokens_per_s']:.3g}/s"
                            for p in s["points"]
                        ),
                    ]
                    for s in result["batch"]
                ],
            ),
        )
    )
    out.append(
        (
            "Recurrence penalty (RNN / the same FLOPs as one product, same library)",
            _table(
                [
                    "machine",
                    "target",
                    "cell",
                    "B",
                    "T",
                    "H",
                    "L",
                    "threads",
                    "RNN",
                    "one product",
                    "penalty",
                ],
                [
                    [
                        p["machine"],
                        p["target"],
                        p["cell"],
                        p["batch"],
                        p["steps"],
                        p["hidden"],
                        p["layers"],
                        p["threads"],
                        _t(p["median"]),
                        _t(p["gemm_median"]),
                        f"{p['penalty']:.2f}x",
                    ]
                    for p in sorted(
                        result["penalties"],
                        key=lambda p: (p["machine"], p["target"], p["batch"], p["steps"]),
                    )
                ],
            ),
        )
    )
    out.append(
        (
            "Roofline of one recurrent step",
            "Bound = max(step FLOPs / measured peak, "
            "bytes of R + states / measured copy bandwidth). The copy probe measures DRAM: "
            "an R that stays in cache (H=256 LSTM: 1 MiB) can run under this bound.\n\n"
            + _table(
                [
                    "machine",
                    "target",
                    "cell",
                    "B",
                    "H",
                    "measured b",
                    "compute bound",
                    "memory bound",
                    "limited by",
                    "measured / bound",
                ],
                [
                    [
                        r["machine"],
                        r["target"],
                        r["cell"],
                        r["batch"],
                        r["hidden"],
                        _t(r["step_s"]),
                        _t(r["compute_bound_s"]),
                        _t(r["memory_bound_s"]),
                        r["limited_by"],
                        f"{r['times_bound']:.2f}x",
                    ]
                    for r in result["roofline"]
                ],
            ),
        )
    )
    out.append(
        (
            "Amdahl: what parallelising over time can buy",
            _table(
                [
                    "cell",
                    "I",
                    "H",
                    "layers",
                    "parallel share (input projection)",
                    "serial share (h @ R)",
                    "max speed-up",
                ],
                [
                    [
                        a["cell"],
                        a["input_size"],
                        a["hidden"],
                        a["layers"],
                        f"{100 * a['parallel_share']:.0f}%",
                        f"{100 * a['serial_share']:.0f}%",
                        f"{a['max_speedup']:.2f}x",
                    ]
                    for a in result["amdahl"]
                ],
            ),
        )
    )
    out.append(
        (
            "GRU against minGRU",
            _table(
                ["machine", "target", "B", "H", "T", "GRU", "minGRU scan", "minGRU loop"],
                [
                    [
                        m["machine"],
                        m["target"],
                        m["batch"],
                        m["hidden"],
                        m["steps"],
                        _t(m["gru"]) if "gru" in m else "",
                        _t(m["mingru-scan"]),
                        _t(m["mingru-loop"]) if "mingru-loop" in m else "",
                    ]
                    for m in result["mingru"]
                ],
            ),
        )
    )
    if result["crossover"]:
        out.append(
            (
                "CPU against GPU",
                _table(
                    ["cell", "B", "T", "H", "best CPU", "time", "best GPU", "time", "GPU speed-up"],
                    [
                        [
                            c["cell"],
                            c["batch"],
                            c["steps"],
                            c["hidden"],
                            c["cpu"],
                            _t(c["cpu_s"]),
                            c["gpu"],
                            _t(c["gpu_s"]),
                            f"{c['gpu_speedup']:.2f}x",
                        ]
                        for c in result["crossover"]
                    ],
                ),
            )
        )
    else:
        out.append(
            (
                "CPU against GPU",
                "No shape was timed on both a CPU and a GPU in these "
                "results: give a GPU run's results file too.",
            )
        )
    if audit_table:
        out.append(("ONNX export forms (from the parity report)", audit_table))
    not_ok = [
        (r["id"], r["status"], r["reason"])
        for d in benches
        for r in d["cases"]
        if r["status"] != "ok"
    ]
    if not_ok:
        out.append(
            ("Cases not timed", "\n".join(f"- `{i}` {s}: {reason}" for i, s, reason in not_ok))
        )
    return out


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.0f}%"
