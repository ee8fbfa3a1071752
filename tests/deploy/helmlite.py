"""A small renderer of Helm chart templates (Go ``text/template`` plus the Sprig functions the chart
uses), for checking the chart offline where no ``helm`` binary can be installed.

It implements what ``deploy/helm`` uses and fails loudly on anything else, so a template that this
renderer accepts is one a reviewer can read as plain Helm: actions with ``{{-``/``-}}`` trimming,
comments, ``if``/``else if``/``else``, ``range`` (lists and maps, with ``$k, $v :=``), ``with``,
``define``/``include``/``template``, variables (``$``, ``$x :=``), pipelines and parenthesised calls,
and the functions in :data:`FUNCTIONS`. Rendering follows ``helm template``: every file under
``templates/`` not starting with ``_`` is rendered, empty documents are dropped.

    python -m tests.deploy.helmlite deploy/helm/zorgnet-hub -f values.yaml --set database.url=...
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    """A template this renderer cannot render (syntax, unknown function, ``required`` value missing)."""


# --- lexing ------------------------------------------------------------------------------------------------
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


@dataclass
class Text:
    text: str


@dataclass
class Action:
    expr: str


@dataclass
class Block:
    kind: str  # if, range, with, define
    expr: str
    body: list[Any] = field(default_factory=list)
    branches: list[tuple[str, list[Any]]] = field(default_factory=list)  # ("else if expr" | "else", body)


def _lex(source: str) -> list[Text | Action]:
    out: list[Text | Action] = []
    pos = 0
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if text:
            out.append(Text(text))
        out.append(Action(m.group(2).strip()))
        pos = m.end()
        if m.group(3):
            while pos < len(source) and source[pos] in " \t\r\n":
                pos += 1
    if pos < len(source):
        out.append(Text(source[pos:]))
    return out


def parse(source: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """The node tree of a template, and the ``define``d templates in it."""
    tokens = _lex(source)
    defines: dict[str, list[Any]] = {}
    pos = 0

    def block(stop: tuple[str, ...]) -> tuple[list[Any], str]:
        nonlocal pos
        nodes: list[Any] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if isinstance(tok, Text):
                nodes.append(tok)
                continue
            expr = tok.expr
            if expr.startswith("/*"):
                continue
            word = expr.split(None, 1)[0] if expr else ""
            if word in ("end", "else") and word in stop:
                return nodes, expr
            if word in ("if", "range", "with", "define"):
                b = Block(word, expr[len(word) :].strip())
                body, ended = block(("end", "else"))
                b.body = body
                while ended.startswith("else"):
                    rest = ended[4:].strip()
                    sub, ended = block(("end", "else"))
                    b.branches.append((rest, sub))
                if word == "define":
                    defines[_string(b.expr)] = b.body
                else:
                    nodes.append(b)
                continue
            if word in ("end", "else"):
                raise TemplateError(f"unexpected {{{{ {expr} }}}}")
            nodes.append(Action(expr))
        if stop:
            raise TemplateError(f"missing {{{{ end }}}} (expected one of {stop})")
        return nodes, ""

    nodes, _ = block(())
    return nodes, defines


def _string(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in '"`':
        return token[1:-1]
    raise TemplateError(f"expected a string literal, not {token!r}")


# --- expressions -------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<str>"(?:[^"\\]|\\.)*") | (?P<raw>`[^`]*`) | (?P<assign>:=) | (?P<pipe>\|) | (?P<lp>\() | (?P<rp>\))
  | (?P<comma>,) | (?P<num>-?\d+(?:\.\d+)?) | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.) | (?P<ident>[A-Za-z_][A-Za-z0-9_]*) | (?P<ws>\s+)
""",
    re.X,
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise TemplateError(f"cannot parse {expr!r} at {expr[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
    return out


class Scope:
    """The dot, ``$`` and the variables visible at one point of a template."""

    def __init__(self, dot: Any, root: Any, variables: dict[str, Any] | None = None) -> None:
        self.dot = dot
        self.root = root
        self.vars = dict(variables or {})

    def child(self, dot: Any) -> Scope:
        return Scope(dot, self.root, self.vars)


def _field(value: Any, names: list[str]) -> Any:
    for name in names:
        if value is None:
            return None
        if isinstance(value, dict):
            value = value.get(name)
        else:
            value = getattr(value, name, None)
    return value


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, (list, dict, tuple)) and not value)


class Renderer:
    """Renders the templates of one chart with one set of values."""

    def __init__(self, defines: dict[str, list[Any]]) -> None:
        self.defines = defines
        self.functions: dict[str, Callable[..., Any]] = {**FUNCTIONS, "include": self.include}

    def include(self, name: str, dot: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f"no template named {name!r}")
        scope = Scope(dot, dot)  # as in Go: inside a template, $ is the value it was called with
        return self.render_nodes(self.defines[name], scope)

    def render(self, nodes: list[Any], values: dict[str, Any]) -> str:
        self._root = values
        return self.render_nodes(nodes, Scope(values, values))

    def render_nodes(self, nodes: list[Any], scope: Scope) -> str:
        out: list[str] = []
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                out.append(self._action(node.expr, scope))
            else:
                out.append(self._block(node, scope))
        return "".join(out)

    def _action(self, expr: str, scope: Scope) -> str:
        toks = _tokens(expr)
        if len(toks) >= 2 and toks[0][0] == "var" and toks[1][0] == "assign":
            scope.vars[toks[0][1]] = self._pipeline(toks[2:], scope)
            return ""
        if toks and toks[0] == ("ident", "template"):
            name = _string(toks[1][1])
            dot = self._pipeline(toks[2:], scope) if len(toks) > 2 else None
            return self.include(name, dot)
        return _print(self._pipeline(toks, scope))

    def _block(self, b: Block, scope: Scope) -> str:
        if b.kind == "if":
            if truthy(self._pipeline(_tokens(b.expr), scope)):
                return self.render_nodes(b.body, scope)
            for cond, body in b.branches:
                if cond.startswith("if "):
                    if truthy(self._pipeline(_tokens(cond[3:]), scope)):
                        return self.render_nodes(body, scope)
                    continue
                return self.render_nodes(body, scope)
            return ""
        if b.kind == "with":
            value = self._pipeline(_tokens(b.expr), scope)
            if truthy(value):
                return self.render_nodes(b.body, scope.child(value))
            for _cond, body in b.branches:
                return self.render_nodes(body, scope)
            return ""
        if b.kind == "range":
            toks = _tokens(b.expr)
            names: list[str] = []
            if any(t[0] == "assign" for t in toks):
                at = [t[0] for t in toks].index("assign")
                names = [t[1] for t in toks[:at] if t[0] == "var"]
                toks = toks[at + 1 :]
            value = self._pipeline(toks, scope)
            items: list[tuple[Any, Any]]
            if isinstance(value, dict):
                items = sorted(value.items())
            else:
                items = list(enumerate(value or []))
            if not items:
                for _cond, body in b.branches:
                    return self.render_nodes(body, scope)
                return ""
            out = []
            for key, item in items:
                inner = scope.child(item)
                if len(names) == 1:
                    inner.vars[names[0]] = item
                elif len(names) == 2:
                    inner.vars[names[0]], inner.vars[names[1]] = key, item
                out.append(self.render_nodes(b.body, inner))
            return "".join(out)
        raise TemplateError(f"unknown block {b.kind}")

    # a pipeline: command ('|' command)*
    def _pipeline(self, toks: list[tuple[str, str]], scope: Scope) -> Any:
        commands: list[list[tuple[str, str]]] = [[]]
        depth = 0
        for tok in toks:
            if tok[0] == "lp":
                depth += 1
            elif tok[0] == "rp":
                depth -= 1
            if tok[0] == "pipe" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(tok)
        value: Any = _NOTHING
        for cmd in commands:
            value = self._command(cmd, scope, value)
        return value

    def _command(self, toks: list[tuple[str, str]], scope: Scope, piped: Any) -> Any:
        args = self._operands(toks, scope)
        if not args:
            raise TemplateError("empty command")
        head, rest = args[0], args[1:]
        if isinstance(head, _Func):
            call = rest + ([] if piped is _NOTHING else [piped])
            return head.fn(*call)
        if rest or piped is not _NOTHING:
            raise TemplateError(f"cannot call a non-function with arguments: {toks}")
        return head

    def _operands(self, toks: list[tuple[str, str]], scope: Scope) -> list[Any]:
        out: list[Any] = []
        i = 0
        while i < len(toks):
            kind, text = toks[i]
            if kind == "lp":
                depth, j = 1, i + 1
                while depth:
                    depth += {"lp": 1, "rp": -1}.get(toks[j][0], 0)
                    j += 1
                out.append(self._pipeline(toks[i + 1 : j - 1], scope))
                i = j
                continue
            if kind == "str":
                out.append(bytes(text[1:-1], "utf-8").decode("unicode_escape"))
            elif kind == "raw":
                out.append(text[1:-1])
            elif kind == "num":
                out.append(float(text) if "." in text else int(text))
            elif kind == "field":
                out.append(scope.dot if text == "." else _field(scope.dot, text[1:].split(".")))
            elif kind == "var":
                name, *path = text.split(".")
                if name == "$":
                    base = scope.root
                elif name in scope.vars:
                    base = scope.vars[name]
                else:
                    raise TemplateError(f"undefined variable {name}")
                out.append(_field(base, path))
            elif kind == "ident":
                if text in ("true", "false"):
                    out.append(text == "true")
                elif text == "nil":
                    out.append(None)
                elif text in self.functions:
                    out.append(_Func(self.functions[text]))
                else:
                    raise TemplateError(f"unknown function {text!r}")
            else:
                raise TemplateError(f"unexpected {text!r}")
            i += 1
        return out


class _Nothing:
    pass


_NOTHING = _Nothing()


@dataclass(frozen=True)
class _Func:
    fn: Callable[..., Any]


def _print(value: Any) -> str:
    if value is None or value is _NOTHING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        raise TemplateError("printing a map or list directly: use toYaml")
    return str(value)


# --- functions (Go template builtins and the Sprig/Helm ones the chart uses) --------------------------------
def _to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    return str(yaml.safe_dump(value, default_flow_style=False, sort_keys=True)).rstrip("\n")


def _indent(n: int, text: str) -> str:
    pad = " " * n
    return pad + str(text).replace("\n", "\n" + pad)


def _required(message: str, value: Any) -> Any:
    if value is None or value == "":
        raise TemplateError(f"required: {message}")
    return value


def _default(fallback: Any, value: Any = None) -> Any:
    return value if truthy(value) else fallback


def _quote(*values: Any) -> str:
    import json

    return " ".join(json.dumps(_print(v)) for v in values)


def _printf(fmt: str, *args: Any) -> str:
    return re.sub(r"%[sdv]", "{}", fmt).format(*(_print(a) for a in args))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "default": _default,
    "quote": _quote,
    "squote": lambda *v: " ".join(f"'{_print(x)}'" for x in v),
    "toYaml": _to_yaml,
    "nindent": lambda n, text: "\n" + _indent(n, text),
    "indent": _indent,
    "b64enc": lambda s: base64.b64encode(_print(s).encode()).decode(),
    "trunc": lambda n, s: s[:n] if n >= 0 else s[n:],
    "trimSuffix": lambda suffix, s: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
    "printf": _printf,
    "required": _required,
    "contains": lambda sub, s: sub in s,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda v: not truthy(v),
    "and": lambda *v: next((x for x in v if not truthy(x)), v[-1]),
    "or": lambda *v: next((x for x in v if truthy(x)), v[-1]),
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "toString": _print,
    "int": int,
}


# --- charts ------------------------------------------------------------------------------------------------
def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def set_value(values: dict[str, Any], assignment: str) -> dict[str, Any]:
    """``--set a.b=c`` (strings, ints and booleans, as helm parses them)."""
    path, _, raw = assignment.partition("=")
    value: Any = raw
    if raw in ("true", "false"):
        value = raw == "true"
    elif re.fullmatch(r"-?\d+", raw):
        value = int(raw)
    node: dict[str, Any] = {}
    top = node
    keys = path.split(".")
    for key in keys[:-1]:
        node[key] = {}
        node = node[key]
    node[keys[-1]] = value
    return merge(values, top)


def render_chart(
    chart_dir: Path, values: dict[str, Any] | None = None, *, release: str = "zorgnet", namespace: str = "zorgnet"
) -> dict[str, str]:
    """Every template of the chart rendered, by file name (like ``helm template``)."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    merged = merge(yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}, values or {})
    context = {
        "Values": merged,
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": True},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion", "")},
    }
    templates = sorted((chart_dir / "templates").glob("*"))
    defines: dict[str, list[Any]] = {}
    parsed: dict[str, list[Any]] = {}
    for path in templates:
        nodes, found = parse(path.read_text())
        defines.update(found)
        if not path.name.startswith("_"):
            parsed[path.name] = nodes
    renderer = Renderer(defines)
    return {name: renderer.render(nodes, context) for name, nodes in parsed.items()}


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of a rendered chart (empty documents dropped)."""
    out: list[dict[str, Any]] = []
    for name, text in sorted(rendered.items()):
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise TemplateError(f"{name} does not render to YAML: {exc}\n{text}") from exc
        out.extend(d for d in docs if d)
    return out


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("-f", "--values", type=Path, action="append", default=[])
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for f in args.values:
        values = merge(values, yaml.safe_load(f.read_text()) or {})
    for s in args.set:
        values = set_value(values, s)
    for name, text in sorted(render_chart(args.chart, values).items()):
        if text.strip():
            sys.stdout.write(f"---\n# Source: {name}\n{text.strip()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
