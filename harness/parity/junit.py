"""JUnit XML of a parity record, the format CI systems display: one testsuite per backend, one
testcase per (case, quantity) check, a failure carrying the first differing tensor, index and
values, a skip carrying its reason. A testcase is named by the files checked (classname
`rnnbench.parity.<model file>`, name `<export file>: file outputs (gru float32)`), so that
several models' files merged in one CI page do not collide; names are unique within a file.
Every name and message is data (harness/escape.py for_xml): the XML stays well-formed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.escape import for_xml
from harness.parity.report import quantity_group

FILE_ROLES = ("model-file", "export-file")


def junit_xml(record, source: str | None = None) -> str:
    """record: a ParityRecord; source: the model file as given (default the record's, which a
    source checked only as it runs does not have)."""
    source = source or (record.model.path if record.model else None)
    files = {"model-file": source, "export-file": record.against}

    def subject(backend: str) -> str:
        path = files.get(backend)
        return Path(path).name if path else backend

    suites: dict[str, list] = {}
    for r in record.results:
        cases = suites.setdefault(r.backend, [])
        label = f"{r.cell} {r.dtype}" if r.backend in FILE_ROLES else r.case
        if r.status in ("skipped", "error") or not r.comparisons:
            cases.append((f"{subject(r.backend)}: {label}", r.status, r.reason))
            continue
        groups: dict[str, list] = {}
        for c in r.comparisons:
            groups.setdefault(quantity_group(c.quantity), []).append(c)
        for group, comparisons in groups.items():
            bad = [c for c in comparisons if not c.passed]
            name = f"{subject(r.backend)}: {group} ({label})"
            cases.append((name, "failed" if bad else "passed", bad[0].message if bad else ""))
    for t in record.training:
        name = f"{t.backend}: training ({t.cell} {t.dtype})"
        suites.setdefault(t.backend, []).append((name, t.status, t.failure or t.reason))
    root = ET.Element("testsuites", name="rnnbench parity")
    seen: dict[tuple[str, str], int] = {}
    for backend, cases in suites.items():
        classname = "rnnbench.parity." + (Path(source).name if source else backend)
        failures = sum(status in ("failed", "error") for _, status, _ in cases)
        skipped = sum(status == "skipped" for _, status, _ in cases)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=for_xml(backend),
            tests=str(len(cases)),
            failures=str(failures),
            skipped=str(skipped),
        )
        for name, status, message in cases:
            key = (classname, name)
            seen[key] = seen.get(key, 0) + 1  # a check run twice (two data sets) kept apart
            shown = name if seen[key] == 1 else f"{name} #{seen[key]}"
            case = ET.SubElement(
                suite, "testcase", classname=for_xml(classname), name=for_xml(shown)
            )
            message = for_xml(message)
            if status == "failed":
                ET.SubElement(case, "failure", message=message[:1000]).text = message
            elif status == "error":
                ET.SubElement(case, "error", message=message[:1000]).text = message
            elif status == "skipped":
                ET.SubElement(case, "skipped", message=message[:1000])
    root.set("tests", str(sum(len(c) for c in suites.values())))
    root.set("failures", str(sum(int(s.get("failures") or 0) for s in root)))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path, record, source: str | None = None) -> None:
    write_text_atomic(path, junit_xml(record, source))
