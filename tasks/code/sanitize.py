"""EvalPlus' `sanitize` (evalplus/sanitize.py, v0.3) rewritten on Python's `ast`, for where the
evalplus package (and its tree-sitter parser) is not installed.

EvalPlus: (1) `code_extract` keeps the longest run of at least two lines that parses (counted in
non-blank lines; the first such run on ties); (2) of its top-level statements it keeps, in this
order, every plain import (`from __future__` is another node type to tree-sitter: dropped), then
the first definition of each name: classes, functions that contain a `return` anywhere,
assignments `x = ...` / `x: T = ...` (named by their first target when it is a bare name);
decorated definitions and everything else are dropped; (3) with an entry point, only the
definitions reachable from it through the identifiers they mention; (4) if nothing is left, the
extracted code itself. Spans follow tree-sitter's nodes: a function or class runs on over a
trailing comment on its last line and over later comment lines indented at least as deep as its
body; an assignment or import ends at its last token.
"""
from __future__ import annotations

import ast

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def syntax_ok(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, MemoryError, ValueError):  # ValueError: a NUL byte (EvalPlus would crash)
        return False


def code_extract(text: str) -> str:
    lines = text.split("\n")
    best, best_len = (0, 0), 0
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            if syntax_ok("\n".join(lines[i:j + 1])):
                length = sum(1 for line in lines[i:j + 1] if line.strip())
                if length > best_len:
                    best, best_len = (i, j), length
    return "\n".join(lines[best[0]:best[1] + 1])


def _identifiers(node: ast.AST) -> set[str]:
    """What tree-sitter calls identifiers inside a node: names, attributes, parameters, keyword
    arguments, the names of definitions and imports."""
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, ast.keyword) and n.arg:
            out.add(n.arg)
        elif isinstance(n, (*_FUNCTIONS, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.alias):
            out.update(n.name.split("."))
            if n.asname:
                out.add(n.asname)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            out.update(n.names)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        elif isinstance(n, ast.ImportFrom) and n.module:
            out.update(n.module.split("."))
    return out


def _reachable(entry: str, deps: dict[str, set[str]]) -> set[str]:
    seen, queue = {entry}, [entry]
    while queue:
        for name in deps.get(queue.pop(0), ()):
            if name not in seen:
                seen.add(name)
                queue.append(name)
    return seen


class _Source:
    """Byte spans of a parsed module (ast's columns are UTF-8 byte offsets)."""

    def __init__(self, code: str):
        self.data = code.encode("utf-8")
        self.lines = self.data.split(b"\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + col

    def span(self, node: ast.AST) -> bytes:
        return self.data[self.offset(node.lineno, node.col_offset):self.offset(node.end_lineno, node.end_col_offset)]

    def block_span(self, node: ast.AST) -> bytes:
        """A def/class as tree-sitter's node: on over trailing comments of its body."""
        end_line, end = node.end_lineno, self.offset(node.end_lineno, node.end_col_offset)
        rest = self.lines[end_line - 1][node.end_col_offset:]
        if rest.strip().startswith(b"#"):
            end = self.starts[end_line - 1] + len(self.lines[end_line - 1].rstrip())
        body_indent = node.body[0].col_offset
        for k in range(end_line, len(self.lines)):  # 0-based index of the line after the node
            line = self.lines[k]
            stripped = line.lstrip()
            if not stripped.strip():
                continue
            if not stripped.startswith(b"#") or len(line) - len(stripped) < body_indent:
                break
            end = self.starts[k] + len(line.rstrip())
        return self.data[self.offset(node.lineno, node.col_offset):end]


def _assignment_name(node: ast.AST) -> str | None:
    target = node.targets[0] if isinstance(node, ast.Assign) else node.target
    return target.id if isinstance(target, ast.Name) else None


def extract_target_code_or_empty(code: str, entrypoint: str | None = None) -> str:
    code = code_extract(code)
    try:
        tree = ast.parse(code)
    except (SyntaxError, MemoryError, ValueError):
        return ""  # tree-sitter would find no clean top-level node either
    src = _Source(code)
    imports: list[bytes] = []
    definitions: list[tuple[str | None, ast.AST, bytes]] = []
    names: set[str | None] = set()
    for node in tree.body:
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module != "__future__"):
            imports.append(src.span(node))
            continue
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef)) and not node.decorator_list:
            keep = isinstance(node, ast.ClassDef) or any(isinstance(n, ast.Return) for n in ast.walk(node))
            name, text = node.name, src.block_span(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            keep, name, text = True, _assignment_name(node), src.span(node)
        else:
            continue
        if keep and name not in names:
            definitions.append((name, node, text))
            names.add(name)
    if entrypoint:
        reach = _reachable(entrypoint, {name: _identifiers(node) for name, node, _ in definitions})
        definitions = [d for d in definitions if d[0] in reach]
    return b"\n".join(imports + [text for _, _, text in definitions]).decode("utf-8")


def sanitize(code: str, entrypoint: str | None = None) -> str:
    sanitized = extract_target_code_or_empty(code, entrypoint).strip()
    return sanitized if sanitized else code_extract(code)
