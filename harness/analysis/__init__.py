"""From results files to answers: rows, fits, penalties, bounds, findings, reports,
comparisons. Reads records (harness/records) and the machine's model (harness/machine); may
import harness/bench, harness/model, harness/onnx, harness/parity, harness/sweeps and
harness/predict (the verdict rule) for their types and rules; never the CLI, never a backend."""

# What `rnnbench report` writes in its --out folder, which it replaces whole: files, and the
# folder of the plots.
REPORT_FILES = ("report.md", "report.html", "findings.md")
REPORT_FOLDERS = ("img",)
