"""Segment rules compiled from CEL to one SQL ``CASE`` expression, so that a refresh
classifies a million customers in one set-based statement.

Only the subset of CEL that segment rules need is accepted: int, double, string and bool
literals; the variables in :data:`NUMBERS` and ``traits``; comparisons; ``&& || !``;
``+ - * /``; parentheses; ``x in [literals]``; ``has(traits.x)``; ``"vip" in tags`` (also
written ``customer.tags``, as journeys do). Anything else is refused with its column, so an
operator learns at load time, never during a refresh.

Typing follows CEL where it matters for the result:

* ``traits.x`` compared with a number, or used in arithmetic, is the trait when it is a JSON
  number and SQL NULL otherwise; with a bool, a JSON bool; with a string, a JSON string.
  ``==``/``!=``/``in`` compare JSON values, so ``traits.plan == 5`` is false (not unknown)
  for ``"5"``, as in CEL. A missing trait is NULL: like a CEL error, the rule does not
  match and ``!`` does not make it match (SQL's three-valued logic mirrors CEL's
  commutative ``&&``/``||`` over errors).
* int / int is integer division truncated toward zero (``div``), as in CEL; any division
  by zero is NULL (an error in CEL), never a failed refresh.
* ``"vip" in tags`` is whether ``customer_tags`` holds the tag for the row's
  ``customer_id`` (never NULL): one hashed set of the tag's customers per refresh, not a
  lookup per customer.

The result is SQL text with ``%s`` placeholders and its parameters: strings and trait names
are always parameters, numbers are written by :func:`repr` of a parsed ``int``/``float``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._segment_tokens import (
    INTS,
    NULLABLE,
    NUMBERS,
    SUPPORTED,
    VARIABLES,
    Token,
    Unsupported,
    tokens,
)

__all__ = ["NUMBERS", "Sql", "Unsupported", "compile_case", "compile_condition"]


@dataclass
class Sql:
    """A typed SQL fragment: ``kind`` is int, double, string, bool, trait, list, tags (the
    customer's tags) or customer (only ``customer.tags`` and ``customer.traits``)."""

    text: str
    kind: str
    params: list[Any] = field(default_factory=list)
    path: list[str] | None = None  # for traits: the JSON path
    literal: Any = None  # for literals: the value (lists: the values)
    is_literal: bool = False
    nullable_var: bool = False


_RELATIONS = ("==", "!=", "<", "<=", ">", ">=")
_NUMERIC = ("int", "double")


def compile_condition(source: str) -> Sql:
    """One rule's condition as a boolean SQL fragment; raises :class:`Unsupported`."""
    parser = _Parser(tokens(source))
    node = parser.disjunction()
    if parser.peek.kind != "end":
        raise parser.refuse(parser.peek)
    return _as(node, "bool", parser.start_col)


def compile_case(rules: list[tuple[str, str]]) -> tuple[str, list[Any]]:
    """``CASE WHEN ... THEN name ... ELSE last END`` over the ordered ``(name, when)``
    rules; the last rule is the catch-all and becomes the ``ELSE``."""
    text, params = ["CASE"], []
    for name, when in rules[:-1]:
        cond = compile_condition(when)
        text.append(f"WHEN {cond.text} THEN %s::text")
        params += [*cond.params, name]
    text.append("ELSE %s::text END")
    params.append(rules[-1][0])
    return " ".join(text), params


class _Parser:
    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.i = 0
        self.start_col = toks[0].col

    @property
    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, op: str) -> Token | None:
        if self.peek.kind == "op" and self.peek.text == op:
            return self.take()
        return None

    def expect(self, op: str) -> Token:
        tok = self.accept(op)
        if tok is None:
            raise Unsupported(self.peek.col, f"expected '{op}' here")
        return tok

    def refuse(self, tok: Token) -> Unsupported:
        if tok.kind == "end":
            return Unsupported(tok.col, "the expression ends too early")
        what = {"?": "the conditional operator '? :'", "%": "'%'", "{": "maps"}.get(
            tok.text, f"'{tok.text}'"
        )
        return Unsupported(tok.col, f"{what} is not supported in segment rules; {SUPPORTED}")

    def disjunction(self) -> Sql:
        left = self.conjunction()
        while tok := self.accept("||"):
            right = self.conjunction()
            left = _logic("OR", left, right, tok.col)
        if self.peek.text == "?":
            raise self.refuse(self.peek)
        return left

    def conjunction(self) -> Sql:
        left = self.relation()
        while tok := self.accept("&&"):
            left = _logic("AND", left, self.relation(), tok.col)
        return left

    def relation(self) -> Sql:
        left = self.addition()
        while True:
            tok = self.peek
            if tok.kind == "op" and tok.text in _RELATIONS:
                self.take()
                left = _compare(tok.text, left, self.addition(), tok.col)
            elif tok.kind == "name" and tok.text == "in":
                self.take()
                left = _member_of(left, self.addition(), tok.col)
            else:
                return left

    def addition(self) -> Sql:
        left = self.product()
        while self.peek.kind == "op" and self.peek.text in ("+", "-"):
            tok = self.take()
            left = _arith(tok.text, left, self.product(), tok.col)
        return left

    def product(self) -> Sql:
        left = self.unary()
        while self.peek.kind == "op" and self.peek.text in ("*", "/", "%"):
            tok = self.take()
            if tok.text == "%":
                raise self.refuse(tok)
            left = _arith(tok.text, left, self.unary(), tok.col)
        return left

    def unary(self) -> Sql:
        if tok := self.accept("!"):
            inner = _as(self.unary(), "bool", tok.col)
            return Sql(f"(NOT {inner.text})", "bool", inner.params)
        if tok := self.accept("-"):
            inner = _as(self.unary(), "number", tok.col)
            if inner.is_literal:
                return _literal(Token(inner.kind, "", tok.col, -inner.literal))
            return Sql(f"(- {inner.text})", inner.kind, inner.params)
        return self.member()

    def member(self) -> Sql:
        node = self.primary()
        while True:
            if tok := self.accept("."):
                name = self.take()
                if name.kind != "name":
                    raise Unsupported(name.col, "expected a field name after '.'")
                if self.peek.text == "(":
                    raise _no_function(name)
                node = _field(node, name.text, tok.col)
            elif tok := self.accept("["):
                key = self.take()
                if key.kind != "string":
                    raise Unsupported(key.col, 'index traits with a string: traits["name"]')
                self.expect("]")
                node = _field(node, key.value, tok.col)
            else:
                return node

    def primary(self) -> Sql:
        tok = self.take()
        if tok.kind in ("int", "double", "string"):
            return _literal(tok)
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return Sql(tok.text.upper(), "bool", literal=tok.text == "true", is_literal=True)
            if self.peek.text == "(":
                return self.call(tok)
            return _variable(tok)
        if tok.text == "(":
            inner = self.disjunction()
            self.expect(")")
            return inner
        if tok.text == "[":
            items: list[Sql] = []
            while not self.accept("]"):
                if items:
                    self.expect(",")
                    if self.accept("]"):
                        break
                item = self.unary()
                if not item.is_literal:
                    raise Unsupported(tok.col, 'lists may only hold literals: [1, 2] or ["a"]')
                items.append(item)
            return Sql("", "list", literal=items, is_literal=True)
        raise self.refuse(tok)

    def call(self, name: Token) -> Sql:
        if name.text != "has":
            raise _no_function(name)
        self.expect("(")
        arg = self.member()
        self.expect(")")
        if arg.kind != "trait" or not arg.path:
            raise Unsupported(name.col, "has() takes a trait: has(traits.plan)")
        return Sql("((traits #> %s::text[]) IS NOT NULL)", "bool", [arg.path])


def _no_function(tok: Token) -> Unsupported:
    return Unsupported(tok.col, f"'{tok.text}()' is not supported in segment rules; {SUPPORTED}")


def _variable(tok: Token) -> Sql:
    if tok.text == "traits":
        return Sql("traits", "trait", path=[])
    if tok.text in ("tags", "customer"):
        return Sql("", tok.text)
    if tok.text in NUMBERS:
        kind = "int" if tok.text in INTS else "double"
        return Sql(tok.text, kind, nullable_var=tok.text in NULLABLE)
    from .names import did_you_mean

    if tok.text in ("null", "in"):
        raise Unsupported(tok.col, f"'{tok.text}' is not supported here; {SUPPORTED}")
    hint = did_you_mean(tok.text, (*VARIABLES, "tags"))
    raise Unsupported(
        tok.col, f"unknown variable '{tok.text}'{hint}; segments can use {', '.join(VARIABLES)}"
    )


def _field(node: Sql, name: str, col: int) -> Sql:
    if node.kind == "customer":
        if name not in ("tags", "traits"):
            raise Unsupported(
                col, f"segments know customer.tags and customer.traits, not customer.{name}"
            )
        return Sql("", "tags") if name == "tags" else Sql("traits", "trait", path=[])
    if node.kind != "trait":
        raise Unsupported(col, 'only traits have fields: traits.plan or traits["plan"]')
    return Sql("", "trait", path=[*(node.path or []), name])


def _literal(tok: Token) -> Sql:
    if tok.kind == "string":
        return Sql("%s::text", "string", [tok.value], literal=tok.value, is_literal=True)
    return Sql(f"({tok.value!r})", tok.kind, literal=tok.value, is_literal=True)


def _json(node: Sql, col: int) -> Sql:
    """The value as jsonb, for CEL's equality, which compares across types."""
    if node.kind == "trait":
        if not node.path:
            raise Unsupported(col, "compare a trait (traits.plan), not all traits")
        return Sql("(traits #> %s::text[])", "json", [node.path])
    if node.is_literal:
        return Sql("%s::jsonb", "json", [json.dumps(node.literal)])
    return Sql(f"to_jsonb({node.text})", "json", node.params)


def _as(node: Sql, want: str, col: int) -> Sql:
    """``node`` as ``want`` (bool, number or string); traits are cast by their JSON type."""
    _not_tags(node, col)
    kinds = {"bool": ("bool",), "number": _NUMERIC, "string": ("string",)}[want]
    if node.kind in kinds:
        return node
    if node.kind == "trait" and node.path:
        json_type, cast = {
            "bool": ("boolean", "boolean"),
            "number": ("number", "numeric"),
            "string": ("string", "text"),
        }[want]
        text = (
            f"(CASE WHEN jsonb_typeof(traits #> %s::text[]) = '{json_type}' "
            f"THEN (traits #>> %s::text[])::{cast} END)"
        )
        return Sql(text, "double" if want == "number" else want, [node.path, node.path])
    names = {"int": "a number", "double": "a number", "string": "a string", "bool": "true/false"}
    got = names.get(node.kind, "a list" if node.kind == "list" else "all traits")
    need = {"bool": "true/false", "number": "a number", "string": "a string"}[want]
    raise Unsupported(col, f"expected {need} here, got {got}")


def _logic(op: str, left: Sql, right: Sql, col: int) -> Sql:
    a, b = _as(left, "bool", col), _as(right, "bool", col)
    return Sql(f"({a.text} {op} {b.text})", "bool", a.params + b.params)


def _want_of(node: Sql) -> str:
    return "number" if node.kind in _NUMERIC else node.kind


def _not_tags(node: Sql, col: int) -> None:
    if node.kind == "tags":
        raise Unsupported(col, "tags can only follow 'in': \"vip\" in tags")
    if node.kind == "customer":
        raise Unsupported(col, "segments know customer.tags and customer.traits")


def _compare(op: str, left: Sql, right: Sql, col: int) -> Sql:
    _not_tags(left, col)
    _not_tags(right, col)
    if "list" in (left.kind, right.kind):
        raise Unsupported(col, "lists can only follow 'in': x in [1, 2]")
    if op in ("==", "!=") and "trait" in (left.kind, right.kind):
        a, b = _json(left, col), _json(right, col)
        sql_op = "=" if op == "==" else "<>"
        return Sql(f"({a.text} {sql_op} {b.text})", "bool", a.params + b.params)
    if left.kind == "trait" and right.kind == "trait":
        want = "number"
    else:
        want = _want_of(right if left.kind == "trait" else left)
    if op not in ("==", "!=") and want == "bool":
        raise Unsupported(col, f"'{op}' does not order true/false")
    a, b = _as(left, want, col), _as(right, want, col)
    if _want_of(a) != _want_of(b):
        raise Unsupported(
            col, f"'{op}' compares {_want_of(a)} with {_want_of(b)}; CEL never matches"
        )
    sql_op = {"==": "=", "!=": "<>"}.get(op, op)
    if op in ("==", "!=") and (a.nullable_var or b.nullable_var):
        # CEL: null == 5 is false, not an error; SQL's '=' would give unknown
        sql_op = "IS NOT DISTINCT FROM" if op == "==" else "IS DISTINCT FROM"
    return Sql(f"({a.text} {sql_op} {b.text})", "bool", a.params + b.params)


def _member_of(left: Sql, right: Sql, col: int) -> Sql:
    if right.kind == "tags":
        if left.kind != "string" or not left.is_literal:
            raise Unsupported(col, 'ask for one tag by name: "vip" in tags')
        # uncorrelated: PostgreSQL hashes the tag's customers once for the whole refresh
        text = "(customer_id IN (SELECT t.customer_id FROM customer_tags t WHERE t.tag = %s))"
        return Sql(text, "bool", [left.literal])
    _not_tags(left, col)
    _not_tags(right, col)
    if right.kind != "list":
        raise Unsupported(col, "'in' takes a list of literals: x in [1, 2]")
    items: list[Sql] = right.literal
    if not items:
        return Sql("FALSE", "bool")
    if left.kind == "trait":
        a = _json(left, col)
        values = [_json(i, col) for i in items]
    else:
        want = _want_of(left)
        for item in items:
            if _want_of(item) != want:
                raise Unsupported(col, f"the list mixes {_want_of(item)} with {want}")
        a, values = left, items
    params = a.params + [p for v in values for p in v.params]
    text = f"{a.text} IN ({', '.join(v.text for v in values)})"
    if left.nullable_var:
        text = f"COALESCE({text}, FALSE)"  # CEL: null in [1] is false
    return Sql(f"({text})", "bool", params)


def _arith(op: str, left: Sql, right: Sql, col: int) -> Sql:
    if "string" in (left.kind, right.kind):
        raise Unsupported(col, f"'{op}' on strings is not supported in segment rules")
    a, b = _as(left, "number", col), _as(right, "number", col)
    kind = "int" if a.kind == b.kind == "int" else "double"
    params = a.params + b.params
    if op == "/":
        # CEL: int / int truncates toward zero, like div(); dividing by zero is an error
        # there and NULL (no match) here, never a failed refresh
        if kind == "int":
            return Sql(f"div({a.text}, NULLIF({b.text}, 0))", kind, params)
        return Sql(f"({a.text} / NULLIF({b.text}, 0))", kind, params)
    return Sql(f"({a.text} {op} {b.text})", kind, params)
