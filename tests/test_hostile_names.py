"""Names are data (issue 25): a tensor, node, input or output name of an ONNX file, or a file
name, that holds an escape sequence, characters XML forbids, HTML or Markdown's own characters
is shown escaped on the terminal, in the JUnit XML (which stays well-formed), in parity.md and in
`rnnbench report`'s pages; harness/escape.py's three escapes, and their use end to end."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from harness.escape import for_markdown, for_markdown_code, for_terminal, for_xml

HOSTILE = "\x1b[31m<script>|`\x0b\x1f]]>\u202e&"
# What each kind of character becomes on a terminal: escaped where it is not printable.
SHOWN = "\\x1b[31m<script>|`\\x0b\\x1f]]>\\u202e&"


@pytest.mark.parametrize(
    "text,shown",
    [
        (HOSTILE, SHOWN),
        ("cr\rbs\bnl\ntab\t", "cr\\x0dbs\\x08nl\\x0atab\\x09"),
        ("bad utf-8 \udcff", "bad utf-8 \\udcff"),  # a file name's undecodable byte
        ("nul\x00 del\x7f c1\x9b", "nul\\x00 del\\x7f c1\\x9b"),
        ("Grüße 名前 ok", "Grüße 名前 ok"),  # printable text is kept as it is
    ],
)
def test_for_terminal_shows_what_is_not_printable_escaped(text, shown):
    assert for_terminal(text) == shown
    assert for_terminal(text).isprintable()


def test_for_xml_is_allowed_by_xml_and_reads_back_as_shown():
    text = HOSTILE + "\ttab\nline\udcff\ufffe"
    element = ET.Element("testcase", name=for_xml(text))
    element.text = for_xml(text)
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode"))
    assert parsed.text == for_xml(text) and "\\x1b" in parsed.text and "\t" in parsed.text
    assert parsed.get("name") == for_xml(text)  # attributes keep tab and line break too
    assert "\x1b" not in parsed.text and "\\udcff" in parsed.text and "\\ufffe" in parsed.text


def _rendered(markdown: str) -> str:
    pytest.importorskip("markdown_it", reason="markdown-it-py is not installed (the report extra)")
    from harness.analysis.html import markdown_to_html

    return markdown_to_html(markdown)


@pytest.mark.parametrize(
    "name", [HOSTILE, "a\\|b", "x`y`z", "[link](https://example.com)", "![i](x.png) <b>b</b>"]
)
def test_for_markdown_renders_as_the_text_in_a_table_cell_and_in_prose(name):
    import html

    from harness.markdown import markdown_table

    table = _rendered(markdown_table(["name", "next"], [[name, "kept"]]))
    cells = table.split("<tbody>")[1].split("<td>")[1:]
    assert len(cells) == 2 and cells[1].startswith("kept"), table  # the cell did not end early
    assert html.unescape(cells[0].split("</td>")[0]) == for_terminal(name)
    prose = _rendered(f"- FAIL {for_markdown(name)}")
    assert "<script>" not in prose and "<b>" not in prose and "<code>" not in prose
    assert html.unescape(prose.split("<li>")[1].split("</li>")[0]) == f"FAIL {for_terminal(name)}"


def test_a_code_span_only_for_what_it_shows_as_written():
    assert for_markdown_code("gru-L1-uni-full-float32") == "`gru-L1-uni-full-float32`"
    assert for_markdown_code("a`b<c") == for_markdown("a`b<c") == "a&#96;b&lt;c"


# End to end: an ONNX source and its perturbed export whose every name is hostile.


def _hostile_names(path, out):
    """A copy of an ONNX file whose graph inputs, outputs, initializers, nodes and their
    tensors are all renamed to hold HOSTILE."""
    import onnx

    model = onnx.load(str(path))
    graph, names = model.graph, {}

    def renamed(name: str) -> str:
        return names.setdefault(name, f"{HOSTILE}{len(names)}{name}") if name else name

    for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        value.name = renamed(value.name)
    for node in graph.node:
        node.name = renamed(node.name or node.op_type)
        node.input[:] = [renamed(n) for n in node.input]
        node.output[:] = [renamed(n) for n in node.output]
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """parity --model SOURCE --against EXPORT --junit --json --report on hostile files and
    names: (exit code, stdout, stderr, folder)."""
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    import contextlib
    import io

    from harness.cli.main import main
    from tests import model_files as make

    folder = tmp_path_factory.mktemp("hostile")
    net = make.torch_net("gru", H=6, head=0, seed=1)
    plain = make.export_onnx(net, folder / "plain.onnx")
    source = _hostile_names(plain, folder / f"gru{HOSTILE}.onnx")
    export = make.perturb_onnx(source, folder / f"export{HOSTILE}.onnx", "one-R")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            ["parity", "--model", str(source), "--against", str(export), "--backends", "numpy"]
            + ["--junit", str(folder / "j.xml"), "--json", str(folder / "r.json")]
            + ["--report", str(folder / "d")]
        )
    return code, out.getvalue(), err.getvalue(), folder


def test_the_terminal_shows_hostile_names_escaped(hostile_run):
    code, out, err, _ = hostile_run
    assert code == 1, out + err  # the perturbed export fails
    assert "\x1b" not in out + err and "\x0b" not in out + err and "\u202e" not in out + err
    assert f"model: gru{SHOWN}" in out  # what was read, named as it is, escaped
    assert f"(T=7, B=3):{SHOWN}" in err  # a FAIL line names the hostile output tensor


def test_junit_xml_of_hostile_names_parses_and_names_the_files(hostile_run):
    *_, folder = hostile_run
    root = ET.parse(folder / "j.xml").getroot()
    cases = [c for suite in root for c in suite]
    assert {c.get("classname") for c in cases} == {f"rnnbench.parity.gru{for_xml(HOSTILE)}.onnx"}
    names = [c.get("name") for c in cases]
    assert len(names) == len(set(names))
    outputs = {
        c.get("name"): c for c in cases if c.get("name").endswith("file outputs (gru float32)")
    }
    assert set(outputs) == {
        f"{file}{SHOWN}.onnx: file outputs (gru float32)" for file in ("gru", "export")
    }
    failure = outputs[f"export{SHOWN}.onnx: file outputs (gru float32)"].find("failure")
    assert "\\x1b[31m<script>" in failure.get("message")  # the output tensor's name


def test_parity_markdown_and_json_of_hostile_names(hostile_run):
    *_, folder = hostile_run
    text = (folder / "d" / "parity.md").read_text()
    assert "<script" not in text and "\x1b" not in text and "\x0b" not in text
    assert f"/export{for_markdown(HOSTILE)}.onnx." in text.split("Export: ")[1]
    assert "- FAIL export-file gru-file-float32:" in text and "Verdict: FAILED." in text
    doc = json.loads((folder / "r.json").read_text(), parse_constant=float)
    assert doc["passed"] is False and HOSTILE in doc["against"]  # the record holds data as is


def test_report_of_a_hostile_parity_record_escapes_and_shows_it_failed(hostile_run, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the report extra)")
    pytest.importorskip("markdown_it", reason="markdown-it-py is not installed (the report extra)")
    import contextlib
    import io

    from harness.analysis.html import LOAD_CHECK
    from harness.cli.main import main
    from tests.synthetic_results import example_doc

    *_, folder = hostile_run
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(example_doc("cpu-box")))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", str(bench), str(folder / "r.json"), "--out", str(tmp_path / "o")])
    assert code == 0, err.getvalue()
    assert "\x1b" not in out.getvalue() + err.getvalue()
    markdown = (tmp_path / "o" / "report.md").read_text()
    page = (tmp_path / "o" / "report.html").read_text()
    assert "<script" not in markdown and "\x1b" not in markdown + page
    assert page.count("<script") == LOAD_CHECK.count("<script") == 1  # the page's own only
    section = markdown.split("## Parity checks")[1].split("\n## ")[0]
    assert f"gru{for_markdown(HOSTILE)}.onnx" in section and "| FAILED |" in section
    assert "export-file gru-file-float32: " in section  # its first failure
