"""Source-code templates of the languages the simulator writes, and picking one from a prompt.

Templates use ``string.Template`` placeholders: ``$name`` (function), ``$params``,
``$a``/``$b`` (parameters), ``$v`` (the local variable), ``$f`` (another function),
``$n``/``$m`` (numbers), ``$op``, ``$s`` (a short phrase), ``$c`` (a comment).
Template lines are indented with four spaces per level; each language swaps in
its own indent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TEMPLATE_INDENT = "    "


@dataclass(frozen=True)
class Language:
    """How one language spells the few constructs the generator uses."""

    name: str
    words: tuple[str, ...]
    line_comment: str
    block_open: str
    block_close: str
    indent: str
    naming: Literal["snake", "camel"]
    header: tuple[str, ...]
    func_open: str
    param: str
    assign: str
    statements: tuple[str, ...]
    ret: str
    func_close: str | None


def _c_family(
    *,
    name: str,
    words: tuple[str, ...],
    header: tuple[str, ...],
    func_open: str,
    param: str,
    assign: str,
    loop: str,
    say: str,
    extra: tuple[str, ...] = (),
    naming: Literal["snake", "camel"] = "camel",
    indent: str = TEMPLATE_INDENT,
    parens: bool = True,
    end: str = ";",
) -> Language:
    """A brace language; ``parens`` wraps conditions, ``end`` ends a statement."""
    cond_if, cond_while = ("($v > $n)", "($v < $m)") if parens else ("$v > $n", "$v < $m")
    keyword_while = "while" if end else "for"
    return Language(
        name=name,
        words=words,
        line_comment="//",
        block_open="/*",
        block_close="*/",
        indent=indent,
        naming=naming,
        header=header,
        func_open=func_open,
        param=param,
        assign=assign,
        statements=(
            f"if {cond_if} {{\n    return $v - $m{end}\n}}",
            loop,
            f"{keyword_while} {cond_while} {{\n    $v = $v * 2 + 1{end}\n}}",
            say,
            "// $c",
            f"$v = $f($a, $n){end}",
            *extra,
        ),
        ret=f"return $v{end}",
        func_close="}",
    )


PYTHON = Language(
    name="python",
    words=("python", "py", "python3", "django", "flask", "fastapi", "pandas"),
    line_comment="#",
    block_open='"""',
    block_close='"""',
    indent=TEMPLATE_INDENT,
    naming="snake",
    header=("from __future__ import annotations", "", "import math", "", ""),
    func_open="def $name($params) -> int:",
    param="$p: int",
    assign="$v = $a $op $b",
    statements=(
        "if $v > $n:\n    return $v - $m",
        "for i in range($n):\n    $v += i * $b",
        "while $v < $m:\n    $v = $v * 2 + 1",
        'print(f"$s: {$v}")',
        "# $c",
        "$v = $f($a, $n)",
        'assert $v >= 0, "$s"',
        "$v = max($v, math.isqrt($m))",
    ),
    ret="return $v",
    func_close=None,
)

JAVASCRIPT = _c_family(
    name="javascript",
    words=("javascript", "js", "node", "nodejs", "react", "ecmascript"),
    header=('"use strict";', "", 'const assert = require("node:assert");', ""),
    func_open="function $name($params) {",
    param="$p",
    assign="let $v = $a $op $b;",
    loop="for (let i = 0; i < $n; i++) {\n    $v += i * $b;\n}",
    say="console.log(`$s: $${$v}`);",
    extra=('assert.ok($v >= 0, "$s");',),
    indent="  ",
)

TYPESCRIPT = _c_family(
    name="typescript",
    words=("typescript", "ts", "deno", "angular"),
    header=('import { strict as assert } from "node:assert";', ""),
    func_open="export function $name($params): number {",
    param="$p: number",
    assign="let $v: number = $a $op $b;",
    loop="for (let i = 0; i < $n; i++) {\n    $v += i * $b;\n}",
    say="console.log(`$s: $${$v}`);",
    extra=('assert.ok($v >= 0, "$s");',),
    indent="  ",
)

RUST = _c_family(
    name="rust",
    words=("rust", "rs", "cargo", "tokio"),
    header=("use std::collections::HashMap;", ""),
    func_open="pub fn $name($params) -> i64 {",
    param="$p: i64",
    assign="let mut $v = $a $op $b;",
    loop="for i in 0..$n {\n    $v += i * $b;\n}",
    say='println!("$s: {}", $v);',
    extra=(
        'assert!($v >= 0, "$s");',
        "let mut seen: HashMap<i64, i64> = HashMap::new();\nseen.insert($v, $n);",
    ),
    naming="snake",
    parens=False,
)

GO = _c_family(
    name="go",
    words=("golang", "go"),
    header=("package main", "", 'import "fmt"', ""),
    func_open="func $name($params) int {",
    param="$p int",
    assign="$v := $a $op $b",
    loop="for i := 0; i < $n; i++ {\n    $v += i * $b\n}",
    say='fmt.Printf("$s: %d\\n", $v)',
    indent="\t",
    parens=False,
    end="",
)

JAVA = _c_family(
    name="java",
    words=("java", "spring", "jvm"),
    header=("package com.example;", "", "import java.util.Objects;", ""),
    func_open="static int $name($params) {",
    param="int $p",
    assign="int $v = $a $op $b;",
    loop="for (int i = 0; i < $n; i++) {\n    $v += i * $b;\n}",
    say='System.out.println("$s: " + $v);',
    extra=('Objects.requireNonNull($v, "$s");',),
)

C = _c_family(
    name="c",
    words=("c", "ansi"),
    header=("#include <stdint.h>", "#include <stdio.h>", ""),
    func_open="int64_t $name($params) {",
    param="int64_t $p",
    assign="int64_t $v = $a $op $b;",
    loop="for (int64_t i = 0; i < $n; i++) {\n    $v += i * $b;\n}",
    say='printf("$s: %lld\\n", (long long)$v);',
    naming="snake",
)

CPP = _c_family(
    name="cpp",
    words=("cpp", "c++", "cxx"),
    header=("#include <iostream>", "#include <vector>", ""),
    func_open="auto $name($params) -> long {",
    param="long $p",
    assign="long $v = $a $op $b;",
    loop="for (long i = 0; i < $n; ++i) {\n    $v += i * $b;\n}",
    say='std::cout << "$s: " << $v << std::endl;',
    extra=("std::vector<long> items{$v, $n};",),
    naming="snake",
)

RUBY = Language(
    name="ruby",
    words=("ruby", "rb", "rails"),
    line_comment="#",
    block_open="=begin",
    block_close="=end",
    indent="  ",
    naming="snake",
    header=("# frozen_string_literal: true", ""),
    func_open="def $name($params)",
    param="$p",
    assign="$v = $a $op $b",
    statements=(
        "return $v - $m if $v > $n",
        "$n.times do |i|\n    $v += i * $b\nend",
        "while $v < $m\n    $v = $v * 2 + 1\nend",
        'puts "$s: #{$v}"',
        "# $c",
        "$v = $f($a, $n)",
    ),
    ret="$v",
    func_close="end",
)

SHELL = Language(
    name="shell",
    words=("shell", "bash", "sh", "zsh"),
    line_comment="#",
    block_open=": '",
    block_close="'",
    indent=TEMPLATE_INDENT,
    naming="snake",
    header=("#!/usr/bin/env bash", "set -euo pipefail", ""),
    func_open="$name() {",
    param="",
    assign="local $v=$$(( $${1:-$n} $op $${2:-$m} ))",
    statements=(
        'if (( $v > $n )); then\n    echo "$$$v"\n    return 0\nfi',
        "for i in $$(seq 1 $n); do\n    $v=$$(( $v + i ))\ndone",
        'echo "$s: $${$v}"',
        "# $c",
        '$v=$$($f "$$$v" $n)',
    ),
    ret='echo "$$$v"',
    func_close="}",
)

LANGUAGES = (PYTHON, JAVASCRIPT, TYPESCRIPT, RUST, GO, JAVA, C, CPP, RUBY, SHELL)
_BY_WORD = {word: language for language in LANGUAGES for word in language.words}
_WORD = re.compile(r"[a-z][a-z0-9+#]*")


def detect_language(prompt: str) -> Language:
    """The language the prompt names first (``python`` when it names none)."""
    for match in _WORD.finditer(prompt.lower()):
        language = _BY_WORD.get(match.group())
        if language is not None:
            return language
    return PYTHON
