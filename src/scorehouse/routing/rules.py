"""The default's rule language: a small, safe expression over the input fields.

A deployment's last resort may be a rule (the "old rule-based model" a system had before
machine learning), e.g. ``0.9 if support_calls > 3 and plan == "basic" else 0.1``. The text
comes from users and from the registry, so it is never given to `eval`: Python's `ast`
parses it, every node is checked against a whitelist, and the accepted tree is turned into
plain Python closures that `Rule.evaluate` calls.

What a rule may hold:

- field names of the input record (a field absent from the record reads as None);
- numbers, strings, True, False, None, and tuples or lists of those (for ``in``);
- comparisons ``== != < <= > >= in not in is is not``, chained as in Python (``0 < x <= 5``);
- ``and``, ``or``, ``not``; arithmetic ``+ - * / // %`` and unary ``-``/``+``;
- ``A if CONDITION else B``.

Refused with a `UsageError` naming the construct: calls, attribute access, subscripts,
names starting with an underscore, lambdas, comprehensions, ``**``, f-strings, and any
other node. `*` takes numbers only (``"x" * 10**9`` would fill memory), the text is at
most MAX_RULE_CHARS long and MAX_RULE_NODES nodes big.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelError, UsageError

#: The longest rule text accepted.
MAX_RULE_CHARS = 2000
#: The most syntax nodes a rule may hold: bounds its nesting, so neither compiling nor
#: evaluating it can exhaust the stack (`- - - ... 1`).
MAX_RULE_NODES = 256

#: A compiled node: the record -> the node's value.
Node = Callable[[Mapping[str, Any]], Any]


def _times(a: Any, b: Any) -> Any:
    # Numbers only: a string or list times a huge number would be a memory bomb.
    if isinstance(a, (str, list, tuple)) or isinstance(b, (str, list, tuple)):
        raise TypeError("* takes numbers only")
    return a * b


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _times,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_, ast.IsNot: operator.is_not,  # for `field is None`
}
_CONSTANT_TYPES = (int, float, str, bool, type(None))


@dataclass(frozen=True)
class Rule:
    """A parsed, checked rule expression; `evaluate(record)` computes it over one record.

    Build one with `Rule.parse(text)`; `text` is what `to_dict`/the registry keep, and
    `fields` the input fields it reads.
    """

    text: str
    fields: tuple[str, ...]
    _run: Node = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Check and compile `text`.

        Raises:
            UsageError: not text, too long, not a Python expression, or holding a construct
                outside the language (the message names it).
        """
        if not isinstance(text, str) or not text.strip():
            raise UsageError("default.rule: give an expression over input fields, "
                             "e.g. '0.9 if support_calls > 3 else 0.1'")
        if len(text) > MAX_RULE_CHARS:
            raise UsageError(f"default.rule: at most {MAX_RULE_CHARS} characters")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as e:
            raise UsageError(f"default.rule {text!r} is not an expression: {e.msg}") from None
        except (RecursionError, MemoryError):
            raise UsageError("default.rule: nested too deeply") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_RULE_NODES:
            raise UsageError(f"default.rule: at most {MAX_RULE_NODES} terms and operators; "
                             "simplify the rule")
        names: list[str] = []
        run = _compile(tree.body, names)
        return cls(text.strip(), tuple(dict.fromkeys(names)), run)

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        """The rule's value for `record` (absent fields read as None).

        Raises:
            ModelError: the rule fails on this record (e.g. comparing None with a number).
        """
        try:
            return self._run(record)
        except Exception as e:  # the rule, not the caller, failed on this record
            raise ModelError(f"default rule {self.text!r} failed: {type(e).__name__}: {e}") \
                from None


def _refuse(node: ast.AST, what: str) -> UsageError:
    column = getattr(node, "col_offset", 0) + 1
    return UsageError(f"default.rule: {what} is not allowed (at column {column}); "
                      "a rule holds field names, numbers, strings, comparisons, and/or/not, "
                      "+ - * / // %, and 'A if CONDITION else B'")


def _compile(node: ast.AST, names: list[str]) -> Node:
    """The closure computing `node`; `names` collects the fields read.

    Raises:
        UsageError: a node outside the language.
    """
    if isinstance(node, ast.Constant):
        return _constant(node)
    if isinstance(node, ast.Name):
        return _name(node, names)
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_constant(e) if isinstance(e, ast.Constant) else None for e in node.elts]
        if any(i is None for i in items):
            raise _refuse(node, "a list holding anything but constants")
        value = tuple(i({}) for i in items if i is not None)
        return lambda r: value
    if isinstance(node, ast.BoolOp):
        return _boolean(node, names)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        fn, inner = _UNARY[type(node.op)], _compile(node.operand, names)
        return lambda r: fn(inner(r))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], _compile(node.left, names), \
            _compile(node.right, names)
        return lambda r: op(left(r), right(r))
    if isinstance(node, ast.Compare):
        return _comparison(node, names)
    if isinstance(node, ast.IfExp):
        test, yes, no = (_compile(n, names) for n in (node.test, node.body, node.orelse))
        return lambda r: yes(r) if test(r) else no(r)
    raise _refuse(node, _describe(node))


def _describe(node: ast.AST) -> str:
    kinds = {ast.Call: "a call", ast.Attribute: "attribute access", ast.Subscript: "a subscript",
             ast.Lambda: "a lambda", ast.JoinedStr: "an f-string", ast.NamedExpr: "':='"}
    for kind, text in kinds.items():
        if isinstance(node, kind):
            return text
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    return f"{type(node).__name__}"


def _constant(node: ast.Constant) -> Node:
    if not isinstance(node.value, _CONSTANT_TYPES):
        raise _refuse(node, f"a {type(node.value).__name__} constant")
    value = node.value
    return lambda r: value


def _name(node: ast.Name, names: list[str]) -> Node:
    if node.id.startswith("_"):
        raise _refuse(node, f"the name {node.id!r} (names starting with '_')")
    key = node.id
    names.append(key)
    return lambda r: r.get(key)


def _boolean(node: ast.BoolOp, names: list[str]) -> Node:
    parts = [_compile(v, names) for v in node.values]
    if isinstance(node.op, ast.And):
        def every(r: Mapping[str, Any]) -> Any:
            value: Any = True
            for p in parts:
                value = p(r)
                if not value:
                    return value
            return value
        return every

    def first(r: Mapping[str, Any]) -> Any:
        value: Any = False
        for p in parts:
            value = p(r)
            if value:
                return value
        return value
    return first


def _comparison(node: ast.Compare, names: list[str]) -> Node:
    ops = []
    for op in node.ops:
        if type(op) not in _COMPARE:
            raise _refuse(node, f"the comparison {type(op).__name__}")
        ops.append(_COMPARE[type(op)])
    terms = [_compile(node.left, names), *(_compile(c, names) for c in node.comparators)]

    def compare(r: Mapping[str, Any]) -> bool:
        left = terms[0](r)
        for op, term in zip(ops, terms[1:], strict=True):
            right = term(r)
            if not op(left, right):
                return False
            left = right
        return True
    return compare


__all__ = ["MAX_RULE_CHARS", "MAX_RULE_NODES", "Rule"]
