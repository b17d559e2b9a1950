"""From results files to answers: fits, penalties, bounds, findings, reports, comparisons."""

# What `rnnbench report` writes in its --out folder, which it replaces whole: files, and the
# folder of the plots.
REPORT_FILES = ("report.md", "report.html", "findings.md")
REPORT_FOLDERS = ("img",)
