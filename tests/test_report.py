"""rnnbench report: Markdown and standalone HTML from results (and parity) files; several
machines merge; bad inputs are refused in one line; and the HTML renders in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness.cli.main import main
from tests.synthetic_results import example_doc, retargeted

ROOT = Path(__file__).resolve().parent.parent
PARITY = ROOT / "results" / "cpu-reference" / "parity.json"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    cpu, gpu = example_doc("cpu-box"), example_doc("gpu-box", scale=0.5)
    retargeted(gpu, "torch-cpu", "torch-cuda")
    inputs = []
    for name, doc in (("cpu", cpu), ("gpu", gpu)):
        inputs.append(folder / f"{name}.json")
        inputs[-1].write_text(json.dumps(doc))
    assert main(["report", *map(str, inputs), str(PARITY), "--out", str(folder / "out")]) == 0
    return folder / "out"


def test_markdown_report_has_every_section_and_plot(report):
    text = (report / "report.md").read_text()
    for title in (
        "The answer on cpu-box",
        "The answer on gpu-box",
        "Contents",
        "Findings in full",
        "Machines",
        "Latency = a + b*T",
        "Batch scaling",
        "Recurrence penalty",
        "Roofline",
        "Amdahl",
        "GRU against minGRU",
        "CPU against GPU",
        "ONNX export forms",
    ):
        assert f"## {title}" in text, title
    assert "| cpu-box |" in text and "| gpu-box |" in text  # machines merge, labelled
    images = re.findall(r"\]\((img/[\w]+\.png)\)", text)
    assert len(images) == 8  # six plots and each machine's answer figure
    for image in images:
        data = (report / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # B = 10 us per step, made up exactly; its bootstrap interval stays within the +-1% rounds
    step = re.search(r"costs \*\*10\.0 us \[([\d.]+), ([\d.]+)\]\*\* in torch-cpu", text)
    assert step and 9.8 <= float(step[1]) <= 10.0 <= float(step[2]) <= 10.2
    assert "up to **3.00x [3.00, 3.00]**" in text  # the made-up penalty, paired round by round
    # medians with their order-statistic interval: 7 rounds over +-1% -> (min, max)
    assert "| torch-cpu | lstm | 1 | 64 | 256 | 1 | 2 | 690.0 us [683.1, 696.9] |" in text
    # the committed parity JSON records the pass rule's own share: no fallback note (an older
    # file's fallback is tested in test_tolerance_share.py)
    assert "an upper bound, capped at 100%" not in text


def test_html_report_is_standalone(report):
    page = (report / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 8
    assert not re.search(r"(src|href)=['\"]https?:", page)  # nothing from the network
    assert "<table>" in page and "<th>penalty [95% interval]</th>" in page
    assert "<strong>3.00x [3.00, 3.00]</strong>" in page  # markdown-it renders the emphasis


def test_the_answer_comes_first_in_at_most_eight_sentences_with_intervals(report):
    text = (report / "report.md").read_text()
    sections = re.findall(r"(?m)^## (.+)$", text)
    assert sections[:3] == ["The answer on cpu-box", "The answer on gpu-box", "Contents"]
    answer = text.split("## The answer on cpu-box\n", 1)[1].split("\n## ", 1)[0]
    sentences = re.findall(r"(?m)^- (.+)$", answer)
    assert 2 <= len(sentences) <= 8
    interval = re.compile(r"\[[\d.]+, [\d.]+\]")
    assert all(interval.search(s) for s in sentences[:-1]), sentences
    # the made-up data: a step costs 10 us at B=1, the penalty is exactly 3x
    assert any("10.0 us [" in s and "at B=1" in s for s in sentences), sentences
    assert any("**3.00x [3.00, 3.00]**" in s for s in sentences), sentences
    assert "![The answer" in answer and re.search(r"img/answer_cpu_box_[0-9a-f]{6}\.png", answer)
    # the contents link every detail section by the id the HTML gives its heading
    page = (report / "report.html").read_text()
    for backend in re.findall(r"\]\(#([\w-]+)\)", text.split("## Contents", 1)[1]):
        assert f"<h2 id='{backend}'>" in page, backend


def test_every_figure_tells_its_series_apart(report):
    """Recorded on each HTML figure: no two labelled series of one axis share colour, marker
    and line style (a repeated colour alone is allowed)."""
    page = (report / "report.html").read_text()
    assert page.count("<figure data-series=") == 8
    _no_two_series_alike(page)


def test_styles_stay_apart_past_the_colour_cycle():
    from harness.analysis.styles import style

    looks = [tuple(style(i).values()) for i in range(70)]
    assert len(set(looks)) == 70
    assert style(0)["color"] == style(10)["color"] and style(0) != style(10)


def _no_two_series_alike(page: str) -> None:
    import html as html_module

    figures = re.findall(r"<figure data-series=(['\"])(.*?)\1", page)
    assert figures
    for _, raw in figures:
        series = json.loads(html_module.unescape(raw))
        seen = {}
        for s in series:
            look = (s["axis"], s["color"], s["marker"], s["linestyle"])
            assert look not in seen, f"{s['label']!r} looks like {seen[look]!r}"
            seen[look] = s["label"]


def test_markdown_to_html_renders_tables_and_escapes_raw_html():
    from harness.analysis.html import markdown_to_html

    page = markdown_to_html("| a | b |\n|---|---|\n| `x<y` | **1** |\n\n- <script>bad</script>")
    assert "<table>" in page and "<td><code>x&lt;y</code></td>" in page
    assert "<td><strong>1</strong></td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_inputs_that_cannot_make_a_report(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["report", str(bad), "--out", str(tmp_path / "r")]) == 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    assert main(["report", str(other), "--out", str(tmp_path / "r")]) == 2
    assert main(["report", str(PARITY), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-extensions",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
]


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it",
)
def test_html_report_renders_in_headless_chromium(report, tmp_path):
    url = (report / "report.html").as_uri()
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load handler did not run"
    assert loaded.group(1) == loaded.group(2) == "8"
    _no_two_series_alike(dom)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, "--window-size=1280,2400", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2400)
    assert len(data) > 20_000  # a blank page compresses to a few KB
