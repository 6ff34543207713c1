"""A tokenizer for the CEL that ``common-expression-language`` accepts, for the checks
that must see the expression as the parser does: where comprehensions are and how deep
they nest, and which names are code rather than text.

Regular expressions over the source were fooled by what hides text from them: a quote in
a ``//`` comment opened a "string" that swallowed the code after it, a nested comprehension
included, and so did a raw string ending in a backslash (``r'\\'``), which a pattern that
knows escapes takes to go on. The lexical forms below
are the ones that library's parser takes (checked against it in the tests): ``//`` line
comments (no block comments), strings quoted with ``'``, ``"``, ``'''`` or ``\"\"\"``,
optionally prefixed with ``r``/``R`` (raw: no escapes), ``b``/``B`` (bytes) or both as
``br``; identifiers, numbers and one- or two-character operators."""

from __future__ import annotations

import re
from dataclasses import dataclass

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[uU]?")
_SPACE = re.compile(r"\s+")
_PREFIXES = frozenset({"r", "R", "b", "B", "br", "bR", "Br", "BR"})
_OPEN = frozenset("([{")


@dataclass(frozen=True)
class Token:
    kind: str  # "ident", "string", "number", "punct"
    text: str
    start: int  # 0-based offset in the source

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class Comprehension:
    macro: str  # all, exists, exists_one, map, filter
    var: str  # the variable it binds
    start: int  # 0-based offset of its opening parenthesis
    end: int  # 0-based offset of its closing parenthesis (len(source) if unclosed)
    depth: int  # 0 at top level, 1 inside another comprehension, ...


def _string_end(source: str, at: int, raw: bool) -> int:
    """Offset just past the string literal whose opening quote is at ``at``."""
    quote = source[at : at + 3] if source[at : at + 3] in ("'''", '"""') else source[at]
    i = at + len(quote)
    while i < len(source):
        if not raw and source[i] == "\\":
            i += 2
            continue
        if source.startswith(quote, i):
            return i + len(quote)
        i += 1
    return len(source)


def tokens(source: str) -> list[Token]:
    """The tokens of ``source`` in order; comments and white space are dropped."""
    out: list[Token] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if m := _SPACE.match(source, i):
            i = m.end()
        elif source.startswith("//", i):
            newline = source.find("\n", i)
            i = len(source) if newline < 0 else newline + 1
        elif ch in "'\"":
            end = _string_end(source, i, raw=False)
            out.append(Token("string", source[i:end], i))
            i = end
        elif m := _IDENT.match(source, i):
            word = m.group(0)
            if word in _PREFIXES and m.end() < len(source) and source[m.end()] in "'\"":
                end = _string_end(source, m.end(), raw="r" in word.lower())
                out.append(Token("string", source[i:end], i))
                i = end
            else:
                out.append(Token("ident", word, i))
                i = m.end()
        elif (m := _NUMBER.match(source, i)) and m.group(0) not in ("", "."):
            out.append(Token("number", m.group(0), i))
            i = m.end()
        else:
            two = source[i : i + 2]
            size = 2 if two in ("==", "!=", "<=", ">=", "&&", "||") else 1
            out.append(Token("punct", source[i : i + size], i))
            i += size
    return out


def code_only(source: str) -> str:
    """``source`` with comments and the insides of string literals blanked (positions kept),
    so that a search for names finds only names."""
    chars = [" " if ch != "\n" else ch for ch in source]
    for tok in tokens(source):
        if tok.kind == "string":
            chars[tok.start] = chars[tok.end - 1] = "'"
        else:
            chars[tok.start : tok.end] = tok.text
    return "".join(chars)


def comprehensions(source: str) -> list[Comprehension]:
    """Every comprehension macro (``LIST.all(x, ...)``), in source order, with its depth."""
    toks = tokens(source)
    found: list[Comprehension] = []
    stack: list[int | None] = []  # per open bracket: the comprehension it opened, if any
    open_comprehensions = 0
    for n, tok in enumerate(toks):
        if tok.kind == "punct" and tok.text in _OPEN:
            index = None
            if _is_macro_call(toks, n):
                index = len(found)
                found.append(
                    Comprehension(toks[n - 1].text, toks[n + 1].text, tok.start, -1,
                                  open_comprehensions)
                )  # fmt: skip
                open_comprehensions += 1
            stack.append(index)
        elif tok.kind == "punct" and tok.text in (")", "]", "}") and stack:
            index = stack.pop()
            if index is not None:
                c = found[index]
                found[index] = Comprehension(c.macro, c.var, c.start, tok.start, c.depth)
                open_comprehensions -= 1
    return [
        c if c.end >= 0 else Comprehension(c.macro, c.var, c.start, len(source), c.depth)
        for c in found
    ]


def _is_macro_call(toks: list[Token], n: int) -> bool:
    """Whether ``toks[n]`` is the ``(`` of ``.macro(var,``."""
    if toks[n].text != "(" or n < 2 or n + 2 >= len(toks):
        return False
    dot, name, var, comma = toks[n - 2], toks[n - 1], toks[n + 1], toks[n + 2]
    return (
        dot.text == "."
        and name.kind == "ident"
        and name.text in MACROS
        and var.kind == "ident"
        and comma.text == ","
    )
