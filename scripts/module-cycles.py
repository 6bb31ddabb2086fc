#!/usr/bin/env python3
"""Lists module cycles inside the workspace's crates.

For every crate given (default: proxy, backend, diffing, flags), each source file is
mapped to its module path (`src/admin/api.rs` -> admin::api). A reference from one
module to another is any `crate::a::b` path, `super::x` path or `use` of them outside
`#[cfg(test)]` blocks. Siblings under one parent form a graph (an edge a -> b when
something in a's subtree names something in b's subtree); a strongly connected group
of two or more siblings is a cycle. A child naming its parent's items is not counted:
that is how Rust modules nest. Exit status 1 when any cycle is found.
"""
import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)::\{([^;]*)\};", re.S)


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    if parts and parts[0] == "bin":
        return ("#bin",) + tuple(parts[1:])
    return tuple(parts)


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod … { … }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def references(module: tuple, text: str, modules: set) -> set:
    found = set()
    paths = [(m.group(1), m.group(2)) for m in PATH.finditer(text)]
    for m in USE_GROUP.finditer(text):
        for item in re.split(r"[,\s]+", m.group(2)):
            item = item.strip("{} ")
            if item:
                paths.append((m.group(1), "::" + item.split("::{")[0]))
    for root, rest in paths:
        base = () if root == "crate" else module[:-1]
        segs = [s for s in rest.split("::") if s]
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
        target = base + tuple(segs)
        while target and target not in modules:
            target = target[:-1]
        found.add(target)
    return found


def cycles(crate: Path) -> list:
    src = crate / "src"
    files = {module_of(src, f): f for f in src.rglob("*.rs")}
    modules = set(files)
    edges = set()
    for module, file in files.items():
        if module and module[0] == "#bin":
            continue
        for target in references(module, strip_tests(file.read_text()), modules):
            # The common ancestor decides which siblings the edge joins.
            k = 0
            while k < min(len(module), len(target)) and module[k] == target[k]:
                k += 1
            if k < len(module) and k < len(target):
                edges.add((module[: k + 1], target[: k + 1]))
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    return [c for c in tarjan(graph) if len(c) > 1]


def tarjan(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    crates = sys.argv[1:] or ["proxy", "backend", "diffing", "flags"]
    found = 0
    for name in crates:
        for group in cycles(root / name):
            found += 1
            print(f"{name}: " + " <-> ".join("::".join(m) for m in group))
    if not found:
        print(f"no module cycles in {', '.join(crates)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
