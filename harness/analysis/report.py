"""`rnnbench report RESULTS... --out DIR`: DIR/report.md (plots in DIR/img/) and a standalone
DIR/report.html (plots inlined as data URIs: it opens with no network). RESULTS are benchmark
results files, and optionally parity JSON files (`rnnbench parity --json`) for the parity
heatmap and the export-form audit, and parallel-in-time sweeps (`rnnbench parallel-in-time
--sweep`) and single solves or predictions (`rnnbench parallel-in-time --json`) for the section
on how parallel the recurrence can be. Several machines' results
merge, labelled by machine; a file timed on several machines (a Dask run) is read as one
single-machine view per machine (harness.records.store.machine_views)."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from harness.analysis import (
    REPORT_FILES,
    REPORT_FOLDERS,
    answer_figure,
    html,
    measures,
    parity_files,
    readme,
    sections,
    solve_records,
    streaming,
)
from harness.analysis.answer import answers
from harness.analysis.measures import Analysis
from harness.analysis.parallel_in_time import analyse as parallel_in_time
from harness.analysis.parity_files import audit_table, parity_grid
from harness.analysis.plots import CAPTIONS, Figures, plot_all
from harness.analysis.trained import analyse as trained_examples
from harness.atomic_folder import replaced_folder
from harness.escape import for_markdown
from harness.records.parallel_in_time import (
    SweepDocument,
    check_solve_record,
    check_sweep,
    is_solve_record,
    is_sweep,
)
from harness.records.parity import ParityRecord
from harness.records.store import KIND, MachineView, ResultsError, check_document, read_json
from harness.records.store import machine_views as views_of
from harness.records.training import TrainingDocument, check_training, is_training


@dataclasses.dataclass(frozen=True)
class ParityFile:
    """A parity record given to the report, and what its section shows of it."""

    record: ParityRecord
    check: parity_files.ParityCheck


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The report's inputs, told apart by content."""

    benches: list[MachineView]  # one view per machine that timed a results file
    parities: list[ParityFile]
    sweeps: list[SweepDocument]
    trainings: list[TrainingDocument]
    solves: list[solve_records.SolveFile] = dataclasses.field(default_factory=list)


def load_inputs(paths: list[str]) -> Inputs:
    """Benchmark results, parity records, parallel-in-time sweeps and training records, told
    apart by content. A benchmark file gives one view per machine that timed it, its path as
    `source`."""
    from harness.parity.report import read_parity

    benches: list[MachineView] = []
    parities, sweeps, trainings, solves = [], [], [], []
    for path in expand(paths):
        doc = read_json(path, allow_infinity=True)  # a failed parity record holds Infinity
        if isinstance(doc, dict) and doc.get("kind") == KIND:
            checked = check_document(read_json(path), path)  # a results file: finite only
            views = views_of(checked, path)
            if not views:
                raise ResultsError(_nothing_kept(checked, path))
            benches += views
        elif isinstance(doc, dict) and "results" in doc and "summary" in doc:
            record = read_parity(path, doc)  # its verdict shown, passed or not
            parities.append(ParityFile(record, parity_files.entry(path, record)))
        elif is_sweep(doc):
            sweeps.append(check_sweep(doc, path))
        elif is_solve_record(doc):  # parallel-in-time --json: a solve, or a prediction alone
            solves.append(solve_records.SolveFile(path, check_solve_record(doc, path)))
        elif is_training(doc):
            trainings.append(check_training(doc, path))
        else:
            raise ResultsError(
                f"{path} is neither an rnnbench results file, a parity JSON, a "
                "parallel-in-time sweep or record nor a training record"
            )
    if not benches and not sweeps and not solves:
        raise ResultsError(
            "no benchmark results among the inputs: give at least one file written by "
            "`rnnbench bench` or `rnnbench parallel-in-time` (--json or --sweep)"
        )
    return Inputs(benches, parities, sweeps, trainings, solves)


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


def write_report(
    paths: list[str], out: str | Path, readme_path: str | Path | None = None
) -> dict[str, Path]:
    """DIR/report.md, DIR/report.html and DIR/findings.md (the README's findings block), plots
    in DIR/img; with readme_path, that file's findings block is rewritten from the same
    findings. DIR is replaced whole once every file is written (harness/atomic_folder.py): it
    never holds files of two runs."""
    inputs, result = analysed(paths)
    benches = inputs.benches
    out = Path(out)
    with replaced_folder(out, "--out", REPORT_FILES, REPORT_FOLDERS) as fresh:
        figures = Figures(fresh)
        # a model file's parity record has its own section
        parities = [p.record for p in inputs.parities if p.record.model is None]
        heat = parity_grid(parities)
        plots = plot_all(result, heat, figures)
        inline = _answer_figures(result, figures)
        body = sections.sections(result, benches, audit_table(parities), bool(plots))
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        heading = f"Generated {stamp} from {', '.join(map(for_markdown, paths))}."
        if heat and heat.note:
            heading += f" Parity heatmap: {heat.note}."
        (fresh / "report.md").write_text(markdown(body, plots, heading), encoding="utf-8")
        page = html.page(body, plots, figures, {**CAPTIONS, **inline}, heading)
        (fresh / "report.html").write_text(page, encoding="utf-8")
        block = findings_block(paths, benches, result)
        (fresh / "findings.md").write_text(block + "\n", encoding="utf-8")
    written = {"markdown": out / "report.md", "html": out / "report.html"}
    written["findings"] = out / "findings.md"
    if readme_path is not None:
        readme.rewrite(readme_path, block)
        written["readme"] = Path(readme_path)
    return written


def _answer_figures(result: Analysis, figures: Figures) -> dict[str, str]:
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


def analysed(paths: list[str]) -> tuple[Inputs, Analysis]:
    """(the inputs, the analysis of them with the sweeps', the trainings', the parity
    records' and the streaming cases')."""
    inputs = load_inputs(paths)
    result = measures.analyse(inputs.benches)
    records = [p.record for p in inputs.parities]
    return inputs, dataclasses.replace(
        result,
        parallel_in_time=parallel_in_time(
            inputs.sweeps, result.rows, result.penalties, inputs.solves
        ),
        trained=trained_examples(inputs.trainings, result.models, records),
        parity_files=[p.check for p in inputs.parities],
        streaming=streaming.analyse(inputs.benches),
    )


def findings_block(
    paths: list[str],
    benches: list[MachineView] | None = None,
    result: Analysis | None = None,
) -> str:
    """The README's findings block, exactly as `rnnbench report --readme` writes it."""
    if benches is None or result is None:
        inputs, result = analysed(paths)
        benches = inputs.benches
    return readme.block(result, benches, [doc.source for doc in benches])


def markdown(body: list[tuple[str, str]], plots: list[str], heading: str) -> str:
    parts = ["# rnnbench report", "", heading, ""]
    for title, text in body:
        parts += [f"## {for_markdown(title)}", "", text, ""]
    parts += ["## Plots", ""] if plots else []
    for name in plots:
        parts += [f"### {CAPTIONS[name]}", "", f"![{CAPTIONS[name]}](img/{name}.png)", ""]
    return "\n".join(parts)
