"""`rnnbench report RESULTS... --out DIR`: DIR/report.md (plots in DIR/img/) and a standalone
DIR/report.html (plots inlined as data URIs: it opens with no network). RESULTS are benchmark
results files, and optionally parity JSON files (`rnnbench parity --json`) for the parity
heatmap and the export-form audit, and parallel-in-time sweeps (`rnnbench parallel-in-time
--sweep`) and single solves or predictions (`rnnbench parallel-in-time --json`) for the section
on how parallel the recurrence can be. Several machines' results
merge, labelled by machine; a file timed on several machines (a Dask run) is read as one
single-machine view per machine (harness.records.store.machine_views)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from harness.analysis import (
    answer_figure,
    html,
    measures,
    parity_files,
    readme,
    sections,
    solve_records,
    trained,
)
from harness.analysis.answer import answers
from harness.analysis.parallel_in_time import analyse as parallel_in_time
from harness.analysis.plots import CAPTIONS, Figures, plot_all
from harness.atomic import write_text_atomic
from harness.escape import for_markdown
from harness.records.store import KIND, ResultsError, check_document, machine_views, read_json
from harness.sweeps.parallel_in_time import check_sweep, is_sweep

LEGACY_NOTE = (
    "some parity files predate the pass rule's own share: there max |error| / atol, "
    "an upper bound, capped at 100% for a passed check"
)


def load_inputs(paths: list[str]) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """(benchmark docs, parity docs, parallel-in-time sweeps, training records), told apart by
    content. A benchmark file gives one document per machine that timed it, its path as
    `source`."""
    benches, parities, sweeps, trainings = [], [], [], []
    for path in expand(paths):
        doc = read_json(path, allow_infinity=True)  # a failed parity record holds Infinity
        if isinstance(doc, dict) and doc.get("kind") == KIND:
            checked = check_document(read_json(path), path)  # a results file: finite only
            views = machine_views(checked, path)
            if not views:
                raise ResultsError(_nothing_kept(checked, path))
            benches += views
        elif isinstance(doc, dict) and "results" in doc and "summary" in doc:
            from harness.parity.report import read_parity

            record = read_parity(path, doc)  # its verdict shown, passed or not
            parities.append({**record.model_dump(), "check": parity_files.entry(path, record)})
        elif is_sweep(doc):
            sweeps.append(check_sweep(doc, path))
        elif solve_records.is_solve_record(doc):  # parallel-in-time --json: read with the sweeps
            sweeps.append(solve_records.check(doc, path))
        elif trained.is_training(doc):
            trainings.append(trained.check_training(doc, path))
        else:
            raise ResultsError(
                f"{path} is neither an rnnbench results file, a parity JSON, a "
                "parallel-in-time sweep or record nor a training record"
            )
    if not benches and not sweeps:
        raise ResultsError(
            "no benchmark results among the inputs: give at least one file written by "
            "`rnnbench bench` or `rnnbench parallel-in-time --json`"
        )
    return benches, parities, sweeps, trainings


def expand(paths: list[str]) -> list[str]:
    """Each folder among the paths as the .json files in it, sorted by name."""
    out = []
    for path in paths:
        folder = Path(path)
        if folder.is_dir():
            found = sorted(str(p) for p in folder.glob("*.json"))
            if not found:
                raise ResultsError(f"{path} is a folder with no .json file in it")
            out += found
        else:
            out.append(path)
    return out


def _nothing_kept(doc, path: str) -> str:
    cases = doc.cases
    first = f": the first says {cases[0].reason!r}" if cases else ""
    return f"{path} holds no case any machine timed ({len(cases)} cases not kept{first})"


def parity_grid(parities: list[dict]) -> dict[str, Any] | None:
    """The heatmap's data: backends (rows), "cell dtype" columns, the worst share of the pass
    rule's tolerance in each (None: skipped), and a note when some share is only a bound."""
    from harness.parity.report import tolerance_grid

    grid = tolerance_grid(r for doc in parities for r in doc["results"])
    if not grid:
        return None
    backends = sorted({k[0] for k in grid})
    columns = sorted({k[1] for k in grid})
    values = [
        [grid[(b, c)]["share"] if (b, c) in grid else None for c in columns] for b in backends
    ]
    exact = all(entry["exact"] for entry in grid.values())
    return {
        "backends": backends,
        "columns": columns,
        "values": values,
        "note": "" if exact else LEGACY_NOTE,
    }


def audit_table(parities: list[dict]) -> str:
    from harness.onnx.audit_table import format_audit
    from harness.parity.report import audit_rows_from_records

    rows = audit_rows_from_records(r for doc in parities for r in doc["results"])
    return format_audit(rows, markdown=True) if rows else ""


def write_report(
    paths: list[str], out: str | Path, readme_path: str | Path | None = None
) -> dict[str, Path]:
    """DIR/report.md, DIR/report.html and DIR/findings.md (the README's findings block); with
    readme_path, that file's findings block is rewritten from the same findings."""
    benches, parities, result = analysed(paths)
    out = Path(out)
    figures = Figures(out)
    parities = [p for p in parities if not p.get("model")]  # a model file's: its own section
    heat = parity_grid(parities)
    plots = plot_all(result, heat, figures)
    inline = _answer_figures(result, figures)
    body = sections.sections(result, benches, audit_table(parities), bool(plots))
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    heading = f"Generated {stamp} from {', '.join(map(for_markdown, paths))}."
    if heat and heat["note"]:
        heading += f" Parity heatmap: {heat['note']}."
    write_text_atomic(out / "report.md", markdown(body, plots, heading))
    page = html.page(body, plots, figures, {**CAPTIONS, **inline}, heading)
    write_text_atomic(out / "report.html", page)
    for stale in (out / "img").glob("*.png"):  # a plot an earlier report drew, this one not
        if stale.stem not in figures.png:
            stale.unlink()
    block = findings_block(paths, benches, result)
    write_text_atomic(out / "findings.md", block + "\n")
    written = {"markdown": out / "report.md", "html": out / "report.html"}
    written["findings"] = out / "findings.md"
    if readme_path is not None:
        readme.rewrite(readme_path, block)
        written["readme"] = Path(readme_path)
    return written


def _answer_figures(result: dict[str, Any], figures: Figures) -> dict[str, str]:
    """The answer's figure per machine that has its data: name -> caption."""
    import matplotlib

    matplotlib.use("Agg")
    drawn = {}
    for machine, _ in answers(result):  # a machine with no answer section gets no figure
        if answer_figure.has_data(result, machine):
            name = sections.figure_name(machine)
            figures.save(name, answer_figure.draw(result, machine))
            drawn[name] = answer_figure.CAPTION
    return drawn


def analysed(paths: list[str]) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """(benchmark documents, parity documents, the analysis of them with the sweeps')."""
    benches, parities, sweeps, trainings = load_inputs(paths)
    result = measures.analyse(benches)
    result["parallel_in_time"] = parallel_in_time(sweeps, result, benches)
    result["trained"] = trained.analyse(trainings, result["models"], parities)
    result["parity_files"] = [p["check"] for p in parities]
    return benches, parities, result


def findings_block(paths: list[str], benches=None, result=None) -> str:
    """The README's findings block, exactly as `rnnbench report --readme` writes it."""
    if benches is None or result is None:
        benches, _, result = analysed(paths)
    return readme.block(result, benches, [doc.source for doc in benches])


def markdown(body, plots: list[str], heading: str) -> str:
    parts = ["# rnnbench report", "", heading, ""]
    for title, text in body:
        parts += [f"## {for_markdown(title)}", "", text, ""]
    parts += ["## Plots", ""] if plots else []
    for name in plots:
        parts += [f"### {CAPTIONS[name]}", "", f"![{CAPTIONS[name]}](img/{name}.png)", ""]
    return "\n".join(parts)
