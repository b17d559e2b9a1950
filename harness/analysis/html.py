"""The report as one standalone HTML page: the sections' Markdown rendered by markdown-it-py
(CommonMark with tables), the plots inlined as PNG data URIs, so that it opens with no network."""

from __future__ import annotations

import base64
import html
import json
import re

from markdown_it import MarkdownIt

from harness.escape import for_terminal

STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid "
    "#ccc;padding:3px 6px;text-align:left}img{max-width:100%}figure{margin:2em 0}"
    "code,pre{background:#f4f4f4}"
)
# The load check lets a headless browser report whether every image decoded.
LOAD_CHECK = (
    "<script>window.addEventListener('load',function(){var i=[].slice.call("
    "document.images);document.body.setAttribute('data-images-loaded',i.filter("
    "function(m){return m.complete&&m.naturalWidth>0}).length+'/'+i.length)});</script>"
)


def markdown_to_html(text: str) -> str:
    """CommonMark plus pipe tables; raw HTML in the text is escaped, not passed through."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def figure(caption: str, png: bytes, series=()) -> str:
    """The image inlined; `series`: its labelled lines and how each looks, kept on the figure
    (data-series) so that a browser test can tell whether any two look alike."""
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption, quote=True)
    looks = html.escape(json.dumps(list(series)), quote=True)
    return (
        f"<figure data-series='{looks}'><img alt='{alt}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


_IMAGE = re.compile(r'<p><img src="img/(\w+)\.png" alt="[^"]*" /></p>')


def page(sections, plots: list[str], figures, captions, heading: str) -> str:
    """heading: the Markdown line under the title (when and from what). A section's image
    img/NAME.png is inlined from `figures` where it stands."""
    from harness.analysis.sections import anchor

    def inline(match) -> str:
        name = match.group(1)
        return figure(captions[name], figures.png[name], figures.series.get(name, ()))

    body = ["<h1>rnnbench report</h1>", markdown_to_html(heading)]
    for title, text in sections:
        rendered = _IMAGE.sub(inline, markdown_to_html(text))
        shown = html.escape(for_terminal(title))
        body.append(f"<h2 id='{anchor(title)}'>{shown}</h2>{rendered}")
    body += ["<h2 id='plots'>Plots</h2>"] if plots else []
    body += [figure(captions[n], figures.png[n], figures.series.get(n, ())) for n in plots]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>rnnbench report</title>"
        f"<style>{STYLE}</style>{LOAD_CHECK}</head><body>{''.join(body)}</body></html>\n"
    )
