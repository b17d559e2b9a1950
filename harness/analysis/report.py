"""`rnnbench report RESULTS... --out DIR`: DIR/report.md (plots in DIR/img/) and a standalone
DIR/report.html (plots inlined as data URIs: it opens with no network). RESULTS are benchmark
results files, and optionally parity JSON files (`rnnbench parity --json`) for the parity
heatmap and the export-form audit. Several machines' results merge, labelled by machine."""

from __future__ import annotations

import base64
import datetime
import html
import io
import types
from pathlib import Path
from typing import Any

from harness.analysis import findings
from harness.analysis import measures as analysis
from harness.atomic import atomic_open, write_text_atomic
from harness.bench.results import KIND, ResultsError, check_document, read_json


def load_inputs(paths: list[str]) -> tuple[list[dict], list[dict]]:
    """(benchmark docs, parity docs), told apart by content."""
    benches, parities = [], []
    for path in paths:
        doc = read_json(path)
        if isinstance(doc, dict) and doc.get("kind") == KIND:
            benches.append(check_document(doc, path))
        elif isinstance(doc, dict) and "results" in doc and "summary" in doc:
            parities.append(doc)
        else:
            raise ResultsError(f"{path} is neither an rnnbench results file nor a parity JSON")
    if not benches:
        raise ResultsError(
            "no benchmark results among the inputs: give at least one file "
            "written by `rnnbench bench`"
        )
    return benches, parities


class Figures:
    """Each plot saved as DIR/img/NAME.png and kept as PNG bytes for the HTML."""

    def __init__(self, folder: Path):
        self.folder, self.png = folder, {}

    def save(self, name: str, fig) -> str:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.png[name] = buffer.getvalue()
        with atomic_open(self.folder / "img" / f"{name}.png") as handle:
            handle.write(self.png[name])
        return name


def _label(row: dict) -> str:
    shape = f"B={row['batch']}" if "batch" in row else f"T={row['steps']}"
    return (
        f"{row['target']} {row['mode']} {row['cell']} {shape} th{row['threads']} @{row['machine']}"
    )


def plot_all(result: dict[str, Any], parities: list[dict], figures: Figures) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fits = [f for f in result["fits"] if f["mode"] == "forward"]
    if fits:
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
        for fit in fits:
            steps = [p[0] for p in fit["points"]]
            seconds = [p[1] for p in fit["points"]]
            (line,) = left.loglog(steps, [s * 1e3 for s in seconds], "o", label=_label(fit))
            lo, hi = min(steps), max(steps)
            grid = [lo * (hi / lo) ** (i / 50) for i in range(51)]
            left.loglog(
                grid,
                [(fit["a"] + fit["b"] * t) * 1e3 for t in grid],
                "-",
                color=line.get_color(),
                alpha=0.6,
            )
            right.semilogx(
                steps,
                [s / t * 1e6 for s, t in zip(seconds, steps, strict=True)],
                "o-",
                color=line.get_color(),
                label=_label(fit),
            )
        left.set(
            xlabel="sequence length T",
            ylabel="latency (ms)",
            title="Latency against T, with fitted a + b*T",
        )
        right.set_yscale("log")
        right.set(
            xlabel="sequence length T",
            ylabel="latency / T (us per step)",
            title="Per-step latency: fixed cost amortised over T",
        )
        left.legend(fontsize=7)
        for axis in (left, right):
            axis.grid(True, which="both", alpha=0.3)
        names.append(figures.save("latency_vs_T", fig))
    if result["batch"]:
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
        for series in result["batch"]:
            b = [p["batch"] for p in series["points"]]
            left.loglog(b, [p["relative"] for p in series["points"]], "o-", label=_label(series))
            right.loglog(b, [p["tokens_per_s"] for p in series["points"]], "o-")
        left.loglog([1, max(b)], [1, max(b)], "k:", label="linear (no batching gain)")
        left.set(xlabel="batch B", ylabel="latency(B) / latency(1)", title="Batch scaling")
        right.set(xlabel="batch B", ylabel="tokens (B*T) per second", title="Throughput")
        left.legend(fontsize=7)
        for axis in (left, right):
            axis.grid(True, which="both", alpha=0.3)
        names.append(figures.save("batch_scaling", fig))
    if result["penalties"]:
        rows = sorted(result["penalties"], key=lambda r: (r["target"], r["batch"], r["steps"]))
        fig, axis = plt.subplots(figsize=(13, max(3, 0.22 * len(rows))))
        axis.barh(
            [
                f"{r['target']} {r['cell']} B={r['batch']} T={r['steps']} H={r['hidden']} "
                f"th{r['threads']}"
                for r in rows
            ],
            [r["penalty"] for r in rows],
        )
        axis.axvline(1, color="k", lw=0.8)
        axis.set(
            xscale="log",
            xlabel="RNN time / time of its FLOPs as one product (x)",
            title="Recurrence penalty",
        )
        axis.tick_params(axis="y", labelsize=7)
        names.append(figures.save("recurrence_penalty", fig))
    efficiency = [r for r in result["efficiency"] if r["fraction_of_peak"] and r["steps"] >= 64]
    if efficiency:
        rows = sorted(efficiency, key=lambda r: -r["fraction_of_peak"])[:40]
        fig, axis = plt.subplots(figsize=(13, max(3, 0.22 * len(rows))))
        axis.barh([r["id"] for r in rows], [100 * r["fraction_of_peak"] for r in rows])
        axis.set(xlabel="% of the measured matrix-product peak", title="Share of peak (T >= 64)")
        axis.tick_params(axis="y", labelsize=6)
        axis.invert_yaxis()
        names.append(figures.save("share_of_peak", fig))
    if result["mingru"]:
        fig, axis = plt.subplots(figsize=(8, 5))
        for target in sorted({r["target"] for r in result["mingru"]}):
            series = [r for r in result["mingru"] if r["target"] == target]
            for label, style in (("gru", "o-"), ("mingru-scan", "s--"), ("mingru-loop", "^:")):
                points = [(r["steps"], r[label]) for r in series if label in r]
                if points:
                    axis.loglog(
                        [p[0] for p in points],
                        [p[1] * 1e3 for p in points],
                        style,
                        label=f"{label} {target}",
                    )
        axis.set(
            xlabel="sequence length T",
            ylabel="latency (ms)",
            title="GRU (T dependent steps) against minGRU (parallel scan, step loop)",
        )
        axis.legend(fontsize=8)
        axis.grid(True, which="both", alpha=0.3)
        names.append(figures.save("gru_vs_mingru", fig))
    heat = _parity_grid(parities)
    if heat:
        backends, columns, values = heat
        fig, axis = plt.subplots(figsize=(1 + 0.9 * len(columns), 1 + 0.35 * len(backends)))
        masked = [[v if v is not None else float("nan") for v in row] for row in values]
        image = axis.imshow(masked, cmap="YlGn", vmin=0, vmax=1, aspect="auto")
        axis.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=7)
        axis.set_yticks(range(len(backends)), backends, fontsize=7)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                text, color = "skip", "gray"
                if v is not None:
                    text, color = ("FAIL", "red") if v > 1 else (f"{100 * v:.0f}%", "black")
                axis.text(j, i, text, ha="center", va="center", fontsize=6, color=color)
        fig.colorbar(image, label="worst error as a share of its tolerance")
        axis.set_title("Parity: every backend against the NumPy float64 reference")
        names.append(figures.save("parity_heatmap", fig))
    return names


def _parity_grid(parities: list[dict]):
    worst: dict[tuple[str, str], float | None] = {}
    for doc in parities:
        for row in doc["summary"]:
            key = (row["backend"], f"{row['cell']} {row['dtype']}")
            if row["status"] == "skipped":
                worst.setdefault(key, None)
                continue
            value = row["worst_of_tolerance"] if row["status"] == "passed" else 2.0
            worst[key] = max(worst.get(key) or 0.0, value)
    if not worst:
        return None
    backends = sorted({k[0] for k in worst})
    columns = sorted({k[1] for k in worst})
    return backends, columns, [[worst.get((b, c)) for c in columns] for b in backends]


def _audit_table(parities: list[dict]) -> str:
    from harness.onnx.audit import format_audit
    from harness.parity.report import audit_rows

    records = [
        types.SimpleNamespace(case=r["case"], audit=r.get("audit"))
        for doc in parities
        for r in doc["results"]
    ]
    rows = audit_rows(records)
    return format_audit(rows, markdown=True) if rows else ""


def write_report(paths: list[str], out: str | Path) -> dict[str, Path]:
    benches, parities = load_inputs(paths)
    out = Path(out)
    result = analysis.analyse(benches)
    figures = Figures(out)
    plots = plot_all(result, parities, figures)
    sections = findings.sections(result, benches, _audit_table(parities))
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sources = ", ".join(Path(p).name for p in paths)
    markdown = _markdown(sections, plots, stamp, sources)
    page = _html(sections, plots, figures.png, stamp, sources)
    write_text_atomic(out / "report.md", markdown)
    write_text_atomic(out / "report.html", page)
    return {"markdown": out / "report.md", "html": out / "report.html"}


PLOT_CAPTIONS = {
    "latency_vs_T": "Latency against sequence length (log-log), with the fitted a + b*T",
    "batch_scaling": "Batch scaling: relative latency and tokens per second",
    "recurrence_penalty": "Recurrence penalty: RNN time over the same FLOPs as one product",
    "share_of_peak": "Achieved share of the measured matrix-product peak",
    "gru_vs_mingru": "GRU against minGRU's parallel scan and step loop",
    "parity_heatmap": "Parity heatmap from the parity report",
}


def _markdown(sections, plots, stamp, sources) -> str:
    parts = ["# rnnbench report", "", f"Generated {stamp} from {sources}.", ""]
    for title, body in sections:
        parts += [f"## {title}", "", body, ""]
    parts += ["## Plots", ""]
    for name in plots:
        parts += [f"### {PLOT_CAPTIONS[name]}", "", f"![{PLOT_CAPTIONS[name]}](img/{name}.png)", ""]
    return "\n".join(parts)


def _html(sections, plots, png, stamp, sources) -> str:
    body = [f"<h1>rnnbench report</h1><p>Generated {stamp} from {html.escape(sources)}.</p>"]
    for title, text in sections:
        body.append(f"<h2>{html.escape(title)}</h2>{_markdown_block_to_html(text)}")
    body.append("<h2>Plots</h2>")
    for name in plots:
        data = base64.b64encode(png[name]).decode("ascii")
        body.append(
            f"<figure><img alt='{html.escape(PLOT_CAPTIONS[name])}' "
            f"src='data:image/png;base64,{data}'><figcaption>"
            f"{html.escape(PLOT_CAPTIONS[name])}</figcaption></figure>"
        )
    # The load check lets a headless browser report whether every image decoded.
    script = (
        "<script>window.addEventListener('load',function(){var i=[].slice.call("
        "document.images);document.body.setAttribute('data-images-loaded',i.filter("
        "function(m){return m.complete&&m.naturalWidth>0}).length+'/'+i.length)});</script>"
    )
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid "
        "#ccc;padding:3px 6px;text-align:left}img{max-width:100%}figure{margin:2em 0}"
        "code,pre{background:#f4f4f4}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>rnnbench report</title>"
        f"<style>{style}</style>{script}</head><body>{''.join(body)}</body></html>\n"
    )


def _markdown_block_to_html(text: str) -> str:
    """The small Markdown the sections use: pipe tables, '- ' lists, paragraphs."""
    out, lines, index = [], text.split("\n"), 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|"):
            table = []
            while index < len(lines) and lines[index].startswith("|"):
                cells = [c.strip() for c in lines[index].strip("|").split("|")]
                if not all(set(c) <= set("-: ") for c in cells):
                    table.append(cells)
                index += 1
            head, *rest = table
            out.append(
                "<table><tr>"
                + "".join(f"<th>{_inline(c)}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rest
                )
                + "</table>"
            )
            continue
        if line.startswith("- "):
            items = []
            while index < len(lines) and lines[index].startswith("- "):
                items.append(f"<li>{_inline(lines[index][2:])}</li>")
                index += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        index += 1
    return "".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    escaped = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = escaped.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
