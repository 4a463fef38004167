"""The page's files: ``index.html`` (with its Content-Security-Policy) and data embedded in JavaScript.

Data reaches the page as JavaScript files that call one function of the page's script
(``matcherReport.rows(3, {...})``), loaded with ``<script src>``: that works from ``file://``,
where ``fetch()`` does not. The values are JSON, written so that no text in them can end or change
the script: every non-ASCII character is a ``\\u`` escape (U+2028 and U+2029 included), and so are
``<``, ``>`` and ``&``.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["CONTENT_SECURITY_POLICY", "index_html", "js_call", "js_literal"]

#: The page's policy: its own files only (scripts, styles, images), nothing inline, no network.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
)

_UNSAFE_IN_SCRIPT = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def js_literal(value: Any) -> str:
    """``value`` as a JSON text that is also a safe JavaScript expression in any script: ASCII
    only (non-ASCII, U+2028/U+2029 and lone surrogates escaped), with ``<``, ``>`` and ``&`` escaped."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False).translate(_UNSAFE_IN_SCRIPT)


def js_call(function: str, *arguments: Any) -> str:
    """One line of JavaScript: ``matcherReport.<function>(<arguments as js_literal>);``."""
    if not function.isidentifier():
        raise ValueError(f"not a JavaScript function name: {function!r}")
    return f"matcherReport.{function}({','.join(js_literal(a) for a in arguments)});\n"


def index_html(title: str) -> str:
    """The page: its policy, the style sheet, an empty frame the script fills, then the scripts."""
    safe_title = html.escape(title, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{safe_title}</title>
<link rel="stylesheet" href="report.css">
</head>
<body>
<header><h1 id="title">{safe_title}</h1><p id="loading" role="status">Loading the report…</p></header>
<noscript><p>This report needs JavaScript (its own script only; nothing is fetched from a network).</p></noscript>
<main id="main" hidden>
<section id="summary" aria-label="Summary"></section>
<section id="charts" aria-label="Charts"></section>
<section id="matches" aria-label="Records">
<h2>Records</h2>
<form id="filters" autocomplete="off"></form>
<p id="shown" role="status"></p>
<div class="table-wrap"><table id="table"><thead></thead><tbody></tbody></table></div>
<nav id="pager" aria-label="Pages"></nav>
</section>
<section id="detail" aria-label="Details of a record" hidden></section>
<section id="run" aria-label="The run"></section>
</main>
<script src="report.js"></script>
<script src="data/summary.js"></script>
</body>
</html>
"""
