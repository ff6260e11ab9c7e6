"""The public API of a Python module read with tree-sitter: functions, classes, signatures, hints, raises.

`read_api(path)` is the software twin's equivalent of `interface.extract`; python_twin.py generates smoke tests
from it. `__all__`, when the module defines it, decides what is public; otherwise names without a leading `_`.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import languages


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str = ""
    default: str | None = None
    kind: str = "positional"  # positional | keyword_only | var_positional | var_keyword


@dataclass(frozen=True)
class Callable_:
    name: str
    params: tuple[Param, ...] = ()
    returns: str = ""
    raises: tuple[str, ...] = ()
    is_async: bool = False
    doc: str = ""
    line: int = 0

    @property
    def signature(self) -> str:
        parts = []
        for p in self.params:
            prefix = {"var_positional": "*", "var_keyword": "**"}.get(p.kind, "")
            text = prefix + p.name + (f": {p.annotation}" if p.annotation else "")
            if p.default is not None:
                text += f" = {p.default}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})" + (f" -> {self.returns}" if self.returns else "")


@dataclass(frozen=True)
class Class_:
    name: str
    init: Callable_ | None = None
    methods: tuple[Callable_, ...] = ()
    bases: tuple[str, ...] = ()
    doc: str = ""
    line: int = 0


@dataclass(frozen=True)
class ModuleApi:
    module: str
    path: str
    functions: tuple[Callable_, ...] = ()
    classes: tuple[Class_, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return asdict(self)


def _text(node, src: bytes) -> str:
    return src[node.start_byte:node.end_byte].decode("utf-8", "replace") if node is not None else ""


def _params(node, src: bytes, drop_self: bool) -> tuple[Param, ...]:
    out: list[Param] = []
    keyword_only = False
    for child in node.named_children:
        kind = "keyword_only" if keyword_only else "positional"
        if child.type == "identifier":
            out.append(Param(_text(child, src), kind=kind))
        elif child.type == "typed_parameter":
            inner = child.named_children[0]
            ann = _text(child.child_by_field_name("type"), src)
            if inner.type == "list_splat_pattern":
                out.append(Param(_text(inner, src).lstrip("*"), ann, kind="var_positional"))
                keyword_only = True
            elif inner.type == "dictionary_splat_pattern":
                out.append(Param(_text(inner, src).lstrip("*"), ann, kind="var_keyword"))
            else:
                out.append(Param(_text(inner, src), ann, kind=kind))
        elif child.type in ("default_parameter", "typed_default_parameter"):
            out.append(Param(_text(child.child_by_field_name("name"), src),
                             _text(child.child_by_field_name("type"), src),
                             _text(child.child_by_field_name("value"), src), kind))
        elif child.type == "list_splat_pattern":
            out.append(Param(_text(child, src).lstrip("*"), kind="var_positional"))
            keyword_only = True
        elif child.type == "dictionary_splat_pattern":
            out.append(Param(_text(child, src).lstrip("*"), kind="var_keyword"))
        elif child.type == "keyword_separator":
            keyword_only = True
    if drop_self and out and out[0].kind == "positional" and out[0].name in ("self", "cls"):
        out = out[1:]
    return tuple(out)


def _raises(body, src: bytes) -> tuple[str, ...]:
    names: list[str] = []
    stack = [body]
    while stack:
        node = stack.pop()
        if node.type in ("function_definition", "class_definition") and node is not body:
            continue
        if node.type == "raise_statement" and node.named_children:
            expr = node.named_children[0]
            target = expr.child_by_field_name("function") if expr.type == "call" else expr
            name = _text(target, src).split(".")[-1]
            if name and name[0].isupper() and name not in names:
                names.append(name)
        stack.extend(node.children)
    return tuple(names)


def _doc(body, src: bytes) -> str:
    first = body.named_children[0] if body is not None and body.named_children else None
    if first is not None and first.type == "expression_statement" and first.named_children \
            and first.named_children[0].type == "string":
        try:
            return (ast.literal_eval(_text(first.named_children[0], src)) or "").strip().splitlines()[0]
        except (ValueError, SyntaxError, IndexError):
            return ""
    return ""


def _function(node, src: bytes, method: bool) -> Callable_:
    body = node.child_by_field_name("body")
    is_async = any(c.type == "async" for c in node.children)
    return Callable_(name=_text(node.child_by_field_name("name"), src),
                     params=_params(node.child_by_field_name("parameters"), src, method),
                     returns=_text(node.child_by_field_name("return_type"), src),
                     raises=_raises(body, src), is_async=is_async, doc=_doc(body, src), line=node.start_point[0] + 1)


def _definitions(block):
    for child in block.named_children:
        if child.type == "decorated_definition":
            decorators = [d for d in child.named_children if d.type == "decorator"]
            inner = child.child_by_field_name("definition")
            yield inner, decorators
        elif child.type in ("function_definition", "class_definition"):
            yield child, []


def _dunder_all(root, src: bytes) -> list[str] | None:
    for child in root.named_children:
        if child.type == "expression_statement" and child.named_children \
                and child.named_children[0].type == "assignment":
            assign = child.named_children[0]
            if _text(assign.child_by_field_name("left"), src) == "__all__":
                try:
                    return list(ast.literal_eval(_text(assign.child_by_field_name("right"), src)))
                except (ValueError, SyntaxError):
                    return None
    return None


def read_api(path: str | Path) -> ModuleApi:
    """The public functions and classes of one Python file."""
    path = Path(path)
    src = path.read_bytes()
    root = languages.parse("python", src).root_node
    exported = _dunder_all(root, src)

    def public(name: str) -> bool:
        return name in exported if exported is not None else not name.startswith("_")

    functions: list[Callable_] = []
    classes: list[Class_] = []
    for node, _decorators in _definitions(root):
        name = _text(node.child_by_field_name("name"), src)
        if not public(name):
            continue
        if node.type == "function_definition":
            functions.append(_function(node, src, method=False))
            continue
        body = node.child_by_field_name("body")
        init = None
        methods = []
        for member, member_decorators in _definitions(body):
            if member.type != "function_definition":
                continue
            member_name = _text(member.child_by_field_name("name"), src)
            static = any("staticmethod" in _text(d, src) for d in member_decorators)
            if member_name == "__init__":
                init = _function(member, src, method=True)
            elif not member_name.startswith("_") and not any("property" in _text(d, src) for d in member_decorators):
                methods.append(_function(member, src, method=not static))
        supers = node.child_by_field_name("superclasses")
        bases = tuple(_text(b, src) for b in supers.named_children) if supers is not None else ()
        classes.append(Class_(name, init, tuple(methods), bases, _doc(body, src), node.start_point[0] + 1))
    return ModuleApi(module=path.stem, path=str(path.resolve()), functions=tuple(functions), classes=tuple(classes))
