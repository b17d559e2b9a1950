"""JUnit XML of a parity run, the format CI systems display: one testsuite per backend, one
testcase per (case, quantity) check, a failure carrying the first differing tensor, index and
values, a skip carrying its reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.atomic import write_text_atomic
from harness.parity.report import quantity_group


def junit_xml(results, training=()) -> str:
    suites: dict[str, list] = {}
    for r in results:
        cases = suites.setdefault(r.backend, [])
        if r.status in ("skipped", "error") or not r.comparisons:
            cases.append((r.case, r.status, r.reason))
            continue
        groups: dict[str, list] = {}
        for c in r.comparisons:
            groups.setdefault(quantity_group(c.quantity), []).append(c)
        for group, comparisons in groups.items():
            bad = [c for c in comparisons if not c.passed]
            cases.append(
                (f"{r.case} {group}", "failed" if bad else "passed", bad[0].message if bad else "")
            )
    for t in training:
        suites.setdefault(t.backend, []).append(
            (f"training {t.cell} {t.dtype}", t.status, t.failure or t.reason)
        )
    root = ET.Element("testsuites", name="rnnbench parity")
    for backend, cases in suites.items():
        failures = sum(status in ("failed", "error") for _, status, _ in cases)
        skipped = sum(status == "skipped" for _, status, _ in cases)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=backend,
            tests=str(len(cases)),
            failures=str(failures),
            skipped=str(skipped),
        )
        for name, status, message in cases:
            case = ET.SubElement(suite, "testcase", classname=backend, name=name)
            if status == "failed":
                ET.SubElement(case, "failure", message=message[:1000]).text = message
            elif status == "error":
                ET.SubElement(case, "error", message=message[:1000]).text = message
            elif status == "skipped":
                ET.SubElement(case, "skipped", message=message[:1000])
    root.set("tests", str(sum(len(c) for c in suites.values())))
    root.set("failures", str(sum(int(s.get("failures")) for s in root)))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path, results, training=()) -> None:
    write_text_atomic(path, junit_xml(results, training))
