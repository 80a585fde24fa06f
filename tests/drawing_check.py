"""A static check that remote text cannot reach a drawing call unsanitised.

Walks the AST of the UI modules and the CLI and classifies every argument of
a drawing call (a Rich `Text` built from a string, a widget given text, a line
printed to the terminal) by where its value can come from:

- ``num``: numbers, booleans, None (cannot carry text);
- ``lit``: tuichat's own string literals (and formatting of them with numbers);
- ``text``: a Rich `Text`/`Content` object (its own construction is checked);
- ``safe``: a `SafeText` from the sanitiser (`safe_line`/`safe_text`), or
  formatting of safe parts; fit for a `Text`, but not for a widget that would
  parse a plain string as markup;
- ``unsafe``: anything else: a `str` from the model, an exception, an
  attribute of a matrix object.

Names are followed within a function (every binding of a local must be safe
for the local to be), through parameters' annotations, attributes a class
sets on `self`, module constants and the return values of tuichat's own
functions. It is an approximation on purpose: code that it cannot see as safe
is written so that it can (a `safe_line` at the call), which is the point.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

NUM, LIT, TEXT, SAFE, UNSAFE = 0, 1, 2, 3, 4
NAMES = {NUM: "num", LIT: "lit", TEXT: "text", SAFE: "safe", UNSAFE: "unsafe"}

# Annotations, by name.
_ANNOTATION_CLASSES = {
    "int": NUM,
    "float": NUM,
    "bool": NUM,
    "None": NUM,
    "Text": TEXT,
    "Content": TEXT,
    "SafeText": SAFE,
}
_CONTAINERS = {
    "tuple",
    "list",
    "set",
    "frozenset",
    "dict",
    "Sequence",
    "Iterable",
    "Iterator",
    "Mapping",
    "Optional",
}
# Calls whose value is a number, whatever their arguments.
_NUMERIC_CALLS = {"len", "int", "float", "round", "abs", "sum", "bool", "ord", "hash"}
# Calls whose value is made of their arguments' values.
_PASSING_CALLS = {
    "str",
    "min",
    "max",
    "sorted",
    "list",
    "tuple",
    "reversed",
    "enumerate",
    "zip",
    "iter",
    "next",
}
# Methods that put their arguments into the string or Text they are called on.
_INSERTING_METHODS = {
    "join",
    "replace",
    "format",
    "format_map",
    "append",
    "append_text",
    "center",
    "ljust",
    "rjust",
}
# Text-level drawing calls: their text arguments may be sanitised strings.
_TEXT_CONSTRUCTORS = {"Text", "Content", "Syntax"}
# Widgets (and methods) that parse a plain string as markup: they take our
# literals or Text objects only, unless called with markup=False.
_WIDGETS = {
    "Static",
    "Label",
    "Button",
    "Option",
    "Input",
    "Markdown",
    "Pretty",
    "Digits",
    "Checkbox",
    "RadioButton",
    "Tab",
    "Link",
    "Collapsible",
}
_WIDGET_METHODS = {"update", "add_option", "notify", "set_title"}
_WIDGET_ALL_ARGS_METHODS = {"add_row", "add_columns", "add_options"}
_WIDGET_KEYWORDS = {
    "renderable",
    "content",
    "label",
    "prompt",
    "placeholder",
    "title",
    "message",
    "text",
    "tooltip",
    "value",
}
_WIDGET_ATTRIBUTES = {"tooltip", "border_title", "border_subtitle", "title", "sub_title"}
_SANITISERS = {"safe_line": SAFE, "safe_text": SAFE}


def combine(classes: Iterable[int]) -> int:
    return max(classes, default=LIT)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    function: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.function}): {self.message}"


def annotation_class(node: ast.expr | None) -> int:
    if node is None:
        return UNSAFE
    if isinstance(node, ast.Constant):
        if node.value is None or node.value is Ellipsis:
            return NUM
        return UNSAFE
    if isinstance(node, ast.Name):
        return _ANNOTATION_CLASSES.get(node.id, UNSAFE)
    if isinstance(node, ast.Attribute):
        return _ANNOTATION_CLASSES.get(node.attr, UNSAFE)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return combine([annotation_class(node.left), annotation_class(node.right)])
    if isinstance(node, ast.Subscript):
        base = node.value
        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
        if name not in _CONTAINERS:
            return UNSAFE
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if name in ("dict", "Mapping") and len(items) == 2:
            items = items[1:]  # the values are what is drawn
        return combine(annotation_class(item) for item in items)
    return UNSAFE


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_text_constructor(func: ast.expr) -> bool:
    """`Text(...)`, `Text.assemble(...)`, `Content.from_markup(...)`..."""
    if isinstance(func, ast.Name):
        return func.id in _TEXT_CONSTRUCTORS
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in _TEXT_CONSTRUCTORS
    )


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function with its qualified name (Class.method, outer.inner)."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    for name, node in walk(tree, ""):
        assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        yield name, node


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of functions inside it."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


class Checker:
    """Checks a set of modules; `exempt` maps (path, qualified function name)
    to why its drawing calls need no sanitiser."""

    def __init__(
        self,
        root: Path,
        paths: list[Path],
        exempt: dict[tuple[str, str], str],
        sources: dict[str, str] | None = None,
    ) -> None:
        """`sources`: module texts to check instead of the files' (by path
        relative to `root`)."""
        self.root = root
        sources = sources or {}
        self.modules = {}
        for path in paths:
            relative = path.relative_to(root).as_posix()
            text = sources.get(relative) or path.read_text(encoding="utf-8")
            self.modules[relative] = ast.parse(text)
        self.exempt = exempt
        self.findings: list[Finding] = []
        self.returns: dict[str, int] = {}  # function name -> class of what it returns
        self.safe_params: dict[str, dict[int | str, int]] = {}  # own API: name -> param -> class
        self.module_scopes: dict[int, Scope] = {}
        self.class_attributes: dict[int, dict[str, int]] = {}
        self._collect_signatures()

    # -- signatures ----------------------------------------------------------------

    def _collect_signatures(self) -> None:
        """Return classes (by annotation, else by what the function returns,
        to a fixpoint) and the parameters of tuichat's own drawing APIs."""
        functions = [(qual, fn) for tree in self.modules.values() for qual, fn in _functions(tree)]
        for qual, fn in functions:
            params = [*fn.args.posonlyargs, *fn.args.args]
            if params and params[0].arg in ("self", "cls"):
                params = params[1:]
            wanted: dict[int | str, int] = {}
            for position, arg in enumerate(params):
                cls = annotation_class(arg.annotation)
                if cls < UNSAFE and _mentions(arg.annotation, {"SafeText", "Text"}):
                    wanted[position] = cls
                    wanted[arg.arg] = cls
            for arg in fn.args.kwonlyargs:
                cls = annotation_class(arg.annotation)
                if cls < UNSAFE and _mentions(arg.annotation, {"SafeText", "Text"}):
                    wanted[arg.arg] = cls
            if wanted:
                name = fn.name
                if name == "__init__" and "." in qual:
                    name = qual.split(".")[-2]  # the class is what is called
                merged = self.safe_params.setdefault(name, {})
                for key, cls in wanted.items():
                    merged[key] = min(merged.get(key, UNSAFE), cls)
        # By name (calls are matched by name): the least safe of the
        # functions so named. One annotated as returning SafeText or Text
        # counts as its annotation (its returns are checked against it).
        self.returns = {fn.name: NUM for _qual, fn in functions}
        for _qual, fn in functions:
            cls = annotation_class(fn.returns)
            if fn.returns is not None and _mentions(fn.returns, {"SafeText", "Text"}):
                self.returns[fn.name] = max(self.returns[fn.name], cls)
        for _ in range(10):
            changed = False
            for path, tree in self.modules.items():
                for qual, fn in _functions(tree):
                    if fn.returns is not None and _mentions(fn.returns, {"SafeText", "Text"}):
                        continue
                    scope = self._scope(path, tree, qual, fn)
                    values = [
                        scope.classify(node.value)
                        for node in _own_nodes(fn)
                        if isinstance(node, ast.Return) and node.value is not None
                    ]
                    cls = combine(values) if values else NUM
                    if cls > self.returns[fn.name]:
                        self.returns[fn.name] = cls
                        self.module_scopes.clear()
                        self.class_attributes.clear()
                        changed = True
            if not changed:
                break

    def _scope(self, path: str, tree: ast.Module, qual: str, fn: ast.AST) -> Scope:
        module = _module_scope(self, tree)
        chain: list[ast.AST] = []
        # Enclosing functions first (closures see their names).
        parts = qual.split(".")
        for end in range(1, len(parts)):
            outer = _find(tree, ".".join(parts[:end]))
            if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
                chain.append(outer)
        scope = module
        for outer in chain:
            scope = Scope(self, scope, outer, _class_of(tree, qual))
        return Scope(self, scope, fn, _class_of(tree, qual))

    # -- checking ------------------------------------------------------------------

    def check(self) -> list[Finding]:
        for path, tree in self.modules.items():
            module = _module_scope(self, tree)
            self._check_nodes(path, "<module>", module, _module_nodes(tree))
            for qual, fn in _functions(tree):
                if (path, qual) in self.exempt:
                    continue
                scope = self._scope(path, tree, qual, fn)
                self._check_nodes(path, qual, scope, _own_nodes(fn))
                if fn.returns is not None and _mentions(fn.returns, {"SafeText", "Text"}):
                    wanted = annotation_class(fn.returns)
                    for node in _own_nodes(fn):
                        if isinstance(node, ast.Return) and node.value is not None:
                            self._expect(path, qual, scope, node.value, wanted, "returned")
        return self.findings

    def _report(self, path: str, function: str, node: ast.AST, message: str) -> None:
        self.findings.append(Finding(path, getattr(node, "lineno", 0), function, message))

    def _expect(
        self, path: str, function: str, scope: Scope, node: ast.expr, most: int, what: str
    ) -> None:
        cls = scope.classify(node)
        if cls > most:
            self._report(
                path,
                function,
                node,
                f"{what} `{ast.unparse(node)}` is {NAMES[cls]}, needs {NAMES[most]} or better",
            )

    def _check_nodes(
        self, path: str, function: str, scope: Scope, nodes: Iterable[ast.AST]
    ) -> None:
        for node in nodes:
            if isinstance(node, ast.Call):
                self._check_call(path, function, scope, node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and target.attr in _WIDGET_ATTRIBUTES
                        and node.value is not None
                    ):
                        self._expect(path, function, scope, node.value, TEXT, "drawn attribute")

    def _check_call(self, path: str, function: str, scope: Scope, call: ast.Call) -> None:
        func, name = call.func, _call_name(call.func)
        keywords = {kw.arg: kw.value for kw in call.keywords if kw.arg}
        plain = isinstance(keywords.get("markup"), ast.Constant) and not keywords["markup"].value
        widget_most = SAFE if plain else TEXT
        if name == "SafeText":
            self._report(path, function, call, "SafeText is made only by the sanitiser")
            return
        if name == "trusted":
            if len(call.args) != 1 or not (
                isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
            ):
                self._report(path, function, call, "trusted() takes a string literal only")
            return
        if _is_text_constructor(func):
            method = func.attr if isinstance(func, ast.Attribute) else ""
            most = LIT if method in ("from_markup", "from_ansi") else SAFE
            args = call.args if method in ("assemble", "from_ansi") else call.args[:1]
            for arg in args:
                if method == "assemble" and isinstance(arg, ast.Tuple) and arg.elts:
                    arg = arg.elts[0]
                self._expect(path, function, scope, arg, most, f"text in {ast.unparse(func)}()")
            return
        if isinstance(func, ast.Attribute) and name in ("append", "append_text"):
            if scope.classify(func.value) == TEXT and call.args:
                self._expect(path, function, scope, call.args[0], SAFE, f"text in .{name}()")
            return
        if name == "Input":
            widget_most = SAFE  # an input's value and placeholder are not markup
        if name in _WIDGETS or (isinstance(func, ast.Attribute) and name in _WIDGET_METHODS):
            for arg in call.args[:1]:
                self._expect(path, function, scope, arg, widget_most, f"drawn by {name}()")
            for key in _WIDGET_KEYWORDS & keywords.keys():
                self._expect(path, function, scope, keywords[key], widget_most, f"{name}({key}=)")
            return
        if isinstance(func, ast.Attribute) and name in _WIDGET_ALL_ARGS_METHODS:
            for arg in call.args:
                self._expect(path, function, scope, arg, widget_most, f"drawn by {name}()")
            return
        if name == "print" or (isinstance(func, ast.Attribute) and name == "write"):
            for arg in call.args:
                self._expect(path, function, scope, arg, SAFE, f"printed by {name}()")
            return
        wanted = self.safe_params.get(name)
        if wanted:
            for position, arg in enumerate(call.args):
                if isinstance(arg, ast.Starred):
                    break
                if position in wanted:
                    self._expect(path, function, scope, arg, wanted[position], f"{name}() takes")
            for key, value in keywords.items():
                if key in wanted:
                    self._expect(path, function, scope, value, wanted[key], f"{name}({key}=)")


def _mentions(node: ast.AST | None, names: set[str]) -> bool:
    return node is not None and any(
        (isinstance(n, ast.Name) and n.id in names)
        or (isinstance(n, ast.Attribute) and n.attr in names)
        for n in ast.walk(node)
    )


def _module_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Module-level code and class bodies, not functions."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _find(tree: ast.AST, qual: str) -> ast.AST | None:
    node: ast.AST | None = tree
    for part in qual.split("."):
        found = None
        for child in ast.walk(node) if node is not None else []:
            if (
                isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and child.name == part
            ):
                found = child
                break
        node = found
    return node


def _class_of(tree: ast.Module, qual: str) -> ast.ClassDef | None:
    parts = qual.split(".")
    for end in range(len(parts) - 1, 0, -1):
        node = _find(tree, ".".join(parts[:end]))
        if isinstance(node, ast.ClassDef):
            return node
    return None


def _module_scope(checker: Checker, tree: ast.Module) -> Scope:
    """Module constants; made again whenever what functions return changed."""
    scope = checker.module_scopes.get(id(tree))
    if scope is None:
        scope = checker.module_scopes[id(tree)] = Scope(checker, None, tree, None)
    return scope


class Scope:
    """The classes of a function's (or a module's) names."""

    def __init__(
        self,
        checker: Checker,
        parent: Scope | None,
        node: ast.AST,
        cls: ast.ClassDef | None,
        *,
        attributes: bool = True,
    ) -> None:
        self.checker = checker
        self.parent = parent
        self.cls = cls
        self.attributes = attributes  # whether `self.x` is looked into
        self.names: dict[str, int] = {}
        bindings: dict[str, list[tuple[str, ast.AST]]] = {}
        nodes = list(_module_nodes(node) if isinstance(node, ast.Module) else _own_nodes(node))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                self.names[arg.arg] = annotation_class(arg.annotation)
            for arg in (args.vararg, args.kwarg):
                if arg is not None:
                    self.names[arg.arg] = UNSAFE
        for sub in nodes:
            if isinstance(sub, ast.Assign):
                for target in sub.targets:
                    _bind(bindings, target, "value", sub.value)
            elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name):
                if sub.value is not None:
                    _bind(bindings, sub.target, "value", sub.value)
                else:
                    bindings.setdefault(sub.target.id, []).append(("annotation", sub.annotation))
            elif isinstance(sub, ast.AugAssign) and isinstance(sub.target, ast.Name):
                _bind(bindings, sub.target, "value", sub.value)
            elif isinstance(sub, (ast.For, ast.AsyncFor)):  # (comprehensions: `_comprehension`)
                _bind(bindings, sub.target, "element", sub.iter)
            elif isinstance(sub, ast.NamedExpr):
                _bind(bindings, sub.target, "value", sub.value)
            elif isinstance(sub, (ast.With, ast.AsyncWith)):
                for item in sub.items:
                    if item.optional_vars is not None:
                        _bind(bindings, item.optional_vars, "opaque", item.context_expr)
            elif isinstance(sub, ast.ExceptHandler) and sub.name:
                bindings.setdefault(sub.name, []).append(("opaque", sub))
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                for alias in sub.names:
                    bound = (alias.asname or alias.name).split(".")[0]
                    bindings.setdefault(bound, []).append(("opaque", sub))
            elif (
                isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and sub is not node
            ):
                bindings.setdefault(sub.name, []).append(("opaque", sub))
        params = dict(self.names)
        for name in bindings:
            if name not in self.names:
                self.names[name] = NUM  # optimistic start, raised to a fixpoint
        for _ in range(20):
            changed = False
            for name, sites in bindings.items():
                cls = combine(self._site_class(kind, value) for kind, value in sites)
                cls = max(cls, params.get(name, NUM))
                if cls > self.names.get(name, NUM):
                    self.names[name] = cls
                    changed = True
            if not changed:
                break

    def _site_class(self, kind: str, value: ast.AST) -> int:
        if kind == "opaque":
            return UNSAFE
        if kind == "annotation":
            assert isinstance(value, ast.expr)
            return annotation_class(value)
        assert isinstance(value, ast.expr)
        return self.classify(value)

    def lookup(self, name: str) -> int:
        if name in self.names:
            return self.names[name]
        if self.parent is not None:
            return self.parent.lookup(name)
        return LIT if name in ("Text", "Style", "Content") else UNSAFE

    def self_attribute(self, attr: str) -> int:
        """What `self.attr` holds: every assignment to it in the class (and
        class-level annotations) must be safe."""
        if self.cls is None or not self.attributes:
            return UNSAFE
        cache = self.checker.class_attributes
        if id(self.cls) not in cache:
            sites: dict[str, list[int]] = {}
            for item in self.cls.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    sites.setdefault(item.target.id, []).append(annotation_class(item.annotation))
            for _qual, fn in _functions(self.cls):
                scope = Scope(self.checker, _top(self), fn, self.cls, attributes=False)
                for node in _own_nodes(fn):
                    if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                        continue
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if not (
                            isinstance(target, ast.Attribute)
                            and isinstance(target.value, ast.Name)
                            and target.value.id == "self"
                        ):
                            continue
                        if isinstance(node, ast.AnnAssign):
                            got = annotation_class(node.annotation)
                        else:
                            got = scope.classify(node.value)
                        sites.setdefault(target.attr, []).append(got)
            cache[id(self.cls)] = {name: combine(found) for name, found in sites.items()}
        return cache[id(self.cls)].get(attr, UNSAFE)

    def classify(self, node: ast.expr) -> int:
        if isinstance(node, ast.Constant):
            return LIT if isinstance(node.value, str) else NUM
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.FormattedValue):
                    spec = value.format_spec
                    if value.conversion == ord("r"):
                        parts.append(SAFE)  # repr() escapes every control character
                    elif (
                        spec is not None
                        and len(spec.values) == 1
                        and isinstance(spec.values[0], ast.Constant)
                        and str(spec.values[0].value).endswith("d")
                    ):
                        parts.append(NUM)  # ":d" takes integers only
                    else:
                        inner = self.classify(value.value)
                        parts.append(SAFE if inner == TEXT else inner)
                else:
                    parts.append(LIT)
            return combine(parts)
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return self.self_attribute(node.attr)
            inner = self.classify(node.value)
            if inner == UNSAFE:
                return UNSAFE
            return SAFE if inner in (TEXT, SAFE) else inner
        if isinstance(node, ast.Subscript):
            return self.classify(node.value)
        if isinstance(node, ast.BinOp):
            left, right = self.classify(node.left), self.classify(node.right)
            if isinstance(node.op, ast.Mult) and LIT in (left, right):
                return LIT  # a literal repeated: the other side must be a number
            if isinstance(node.op, (ast.Add, ast.Mod)):
                return combine([left, right])
            return NUM  # -, /, //, **, bit operations: numbers only
        if isinstance(node, ast.BoolOp):
            return combine(self.classify(value) for value in node.values)
        if isinstance(node, ast.IfExp):
            return combine([self.classify(node.body), self.classify(node.orelse)])
        if isinstance(node, ast.Compare):
            return NUM
        if isinstance(node, ast.UnaryOp):
            return NUM if isinstance(node.op, ast.Not) else self.classify(node.operand)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return combine(self.classify(element) for element in node.elts)
        if isinstance(node, ast.Dict):
            return combine(self.classify(value) for value in node.values)
        if isinstance(node, ast.Starred):
            return self.classify(node.value)
        if isinstance(node, ast.NamedExpr):
            return self.classify(node.value)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self._comprehension(node.generators, node.elt)
        if isinstance(node, ast.DictComp):
            return self._comprehension(node.generators, node.value)
        if isinstance(node, ast.Call):
            return self._call_class(node)
        return UNSAFE

    def _comprehension(self, generators: list[ast.comprehension], element: ast.expr) -> int:
        inner = Scope.__new__(Scope)
        inner.checker, inner.parent, inner.cls = self.checker, self, self.cls
        inner.names, inner.attributes = {}, self.attributes
        for generator in generators:
            cls = inner.classify(generator.iter)
            for target in ast.walk(generator.target):
                if isinstance(target, ast.Name):
                    inner.names[target.id] = cls
        return inner.classify(element)

    def _call_class(self, call: ast.Call) -> int:
        func, name = call.func, _call_name(call.func)
        if _is_text_constructor(func):
            method = func.attr if isinstance(func, ast.Attribute) else ""
            return TEXT if method not in ("__call__",) else UNSAFE
        if isinstance(func, ast.Name):
            if name in _SANITISERS:
                return _SANITISERS[name]
            if name == "trusted":
                return LIT
            if name in _NUMERIC_CALLS:
                return NUM
            if name == "repr":
                return SAFE
            if name in _PASSING_CALLS:
                return combine(self.classify(arg) for arg in call.args)
            if name in _WIDGETS:
                return TEXT  # a widget whose text was checked where it was made
            if name in self.checker.returns:
                return self.checker.returns[name]
            return UNSAFE
        if isinstance(func, ast.Attribute):
            receiver = self.classify(func.value)
            if receiver < UNSAFE:
                if name in _INSERTING_METHODS:
                    args = call.args
                    if name in ("center", "ljust", "rjust"):
                        args = args[1:]  # a width (an int), then the fill character
                    return combine([receiver, *(self.classify(arg) for arg in args)])
                return receiver
            if isinstance(func.value, ast.Name) and func.value.id == "self":
                return self.checker.returns.get(name, UNSAFE)
            return UNSAFE
        return UNSAFE


def _top(scope: Scope) -> Scope:
    while scope.parent is not None:
        scope = scope.parent
    return scope


def _bind(
    bindings: dict[str, list[tuple[str, ast.AST]]], target: ast.AST, kind: str, value: ast.AST
) -> None:
    if isinstance(target, ast.Name):
        bindings.setdefault(target.id, []).append((kind, value))
    elif isinstance(target, (ast.Tuple, ast.List)):
        values = value.elts if isinstance(value, (ast.Tuple, ast.List)) and kind == "value" else []
        for position, element in enumerate(target.elts):
            if len(values) == len(target.elts):
                _bind(bindings, element, kind, values[position])
            else:
                # Unpacking: each name is as safe as the whole.
                _bind(bindings, element, kind, value)
    elif isinstance(target, ast.Starred):
        _bind(bindings, target.value, kind, value)


def check_tree(
    root: Path,
    paths: list[Path],
    exempt: dict[tuple[str, str], str],
    sources: dict[str, str] | None = None,
) -> list[Finding]:
    return Checker(root, paths, exempt, sources).check()
