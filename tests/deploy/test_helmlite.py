"""The template renderer the chart tests use behaves as Go templates + Sprig do, for what it supports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.helmlite import Renderer, TemplateError, parse


def render(source: str, values: dict[str, Any]) -> str:
    nodes, defines = parse(source)
    return Renderer(defines).render(nodes, values)


def test_trim_markers_and_comments() -> None:
    assert render("a  {{- /* note */ -}}  \n b", {}) == "ab"
    assert render("x:\n  {{- if .on }}\n  y: 1\n  {{- end }}\n", {"on": True}) == "x:\n  y: 1\n"
    assert render("x:\n  {{- if .on }}\n  y: 1\n  {{- end }}\n", {"on": False}) == "x:\n"


def test_else_if_and_falsy_values() -> None:
    src = "{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}"
    assert [render(src, v) for v in ({"a": 1}, {"b": [1]}, {"a": 0, "b": {}})] == ["A", "B", "C"]


def test_range_over_maps_sorted_and_lists_with_root() -> None:
    src = "{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}|{{ range .l }}{{ . }}{{ $.sep }}{{ end }}"
    assert render(src, {"m": {"b": 2, "a": 1}, "l": ["x", "y"], "sep": ","}) == "a=1;b=2;|x,y,"


def test_define_include_pipelines() -> None:
    src = (
        '{{- define "lbl" -}}\nname: {{ .n | quote }}\nn: {{ printf "%s-%s" .n "x" | trunc 5 }}\n{{- end -}}'
        'meta:\n  labels:\n    {{- include "lbl" . | nindent 4 }}\n'
        'd: {{ default "dflt" .missing }} {{ .t | b64enc }} {{ toYaml .res | nindent 2 }}'
    )
    out = render(src, {"n": "abcdef", "t": "hi", "res": {"b": 1, "a": [1]}})
    assert out == ('meta:\n  labels:\n    name: "abcdef"\n    n: abcde\nd: dflt aGk= \n  a:\n  - 1\n  b: 1')


def test_required_and_unknown_functions_fail() -> None:
    with pytest.raises(TemplateError, match="required: give x"):
        render('{{ required "give x" .x }}', {})
    with pytest.raises(TemplateError, match="unknown function"):
        render("{{ lookup .x }}", {})
    with pytest.raises(TemplateError, match="missing"):
        render("{{ if .x }}open", {})
