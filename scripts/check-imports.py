#!/usr/bin/env python3
"""Prints the import cycles of the crate's module graph.

The graph is drawn from the code's own paths: `use crate::…`, `use super::…`,
`use self::…`, a child module named at the start of a `use` (`use value::Val`
in a `mod.rs`), and `crate::x::y` written inline. Test code (`tests.rs` files
and `#[cfg(test)] mod tests` blocks) is left out: tests may reach anywhere.

Two levels are checked:

- top-level modules (`report`, `argocd`, `registry`, ...): an edge a -> b when
  any file under a names something under b;
- the submodules of one folder (`argocd/plan.rs` and `argocd/config.rs`, or
  `template/exec.rs` and `template/funcs.rs`): the folder's own `mod.rs` is
  not a node, since a folder's root re-exporting and sharing types with its
  children is the normal shape.

Every strongly connected group of modules is printed with one cycle through
it and, per edge inside the group, the first place the import is written.

It also checks the layering README's Layout section declares: each
top-level module sits in one layer of LAYERS (bottom first) and may import
only modules of its own layer or of layers below, except for the few
EXCEPTIONS listed with their reason; in the layers named in APART (the
front-ends) a member may not import another member either. `registry` counts as two: its seam
(`registry/mod.rs` with the `Registry` trait and its types, and
`registry/requests.rs`) is plain vocabulary, its implementations
(`registry/live.rs`, `cache`, `credentials`, ...) are edges. An import that
breaks the layering is printed with its file, line and `use` line.

Exit status: 0 when clean, 1 with cycles or layering breaks, 2 on a usage
error.

Usage: scripts/check-imports.py [SRC_DIR]   (default: src/ next to scripts/)
"""

import os
import re
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
EXTERNAL_ROOTS = {"std", "core", "alloc"}

# Bottom first; a module may import its own layer and the layers below.
# Keep in step with README.md, section Layout.
LAYERS = [
    ("model and pure decisions",
     ["civil", "outcome", "parallel", "image", "yaml", "policy", "marker", "rewrite", "template", "registry",
      "hold", "diff"]),
    ("dialects", ["flux", "plan", "argocd", "kubesphere"]),
    ("edges", ["tree_write", "scan", "git", "registry/*", "commit", "history"]),
    ("engine", ["update", "manage"]),
    ("rendering", ["report"]),
    ("front-ends", ["action", "krm", "serve"]),
    ("command line", ["cli"]),
]

# Layers whose members may not import one another either: each front-end
# calls the library, never another front-end.
APART = {"front-ends"}

# (from, to): why this upward import is allowed.
EXCEPTIONS = {}


def module_of(src, path):
    """The module path (a tuple of segments) a file defines; None for main.rs."""
    rel = os.path.relpath(path, src).replace(os.sep, "/")
    if rel == "lib.rs":
        return ()
    if rel == "main.rs":
        return None
    parts = rel[: -len(".rs")].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    """Drops `//` comments (doc comments mention paths that are not imports)."""
    out = []
    for line in text.split("\n"):
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def strip_tests(text):
    """Cuts inline `#[cfg(test)] mod tests { ... }` blocks (by brace depth)."""
    while True:
        m = re.search(r"#\[cfg\([^\]]*\btest\b[^\]]*\)\]\s*mod\s+" + IDENT + r"\s*\{", text)
        if not m:
            return text
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [[a, b], [a, c, d], [a, c, e]] (segments only)."""
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas" + IDENT, "", tree)  # `Foo as Bar` → spaces already gone: `FooasBar`

    def parse(s, i):
        """Parses a list of trees from s[i:] until '}' or end; returns (paths, i)."""
        paths = []
        while i < len(s) and s[i] != "}":
            start = i
            prefix = []
            while True:
                m = re.match(IDENT + "|\\*", s[i:])
                if m:
                    prefix.append(m.group(0))
                    i += len(m.group(0))
                if s.startswith("::", i):
                    i += 2
                    if i < len(s) and s[i] == "{":
                        sub, i = parse(s, i + 1)
                        i += 1  # '}'
                        paths.extend(prefix + p for p in sub)
                        prefix = None
                        break
                    continue
                break
            if prefix:
                paths.append(prefix)
            if i < len(s) and s[i] == ",":
                i += 1
            elif i == start:
                i += 1  # not a use tree (a `use` inside a string): skip a character
        return paths, i

    return parse(tree, 0)[0]


def references(text):
    """Every path the file names: from `use` trees and inline `crate::` paths."""
    refs = []
    for m in re.finditer(r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        line = text.count("\n", 0, m.start(1)) + 1
        for path in expand_use_tree(m.group(1)):
            refs.append((path, line))
    for m in re.finditer(r"(?<![:\w])(crate|super|self)((?:::" + IDENT + r")+)", text):
        # Inline paths; `use` lines are matched again here, which only repeats edges.
        line = text.count("\n", 0, m.start()) + 1
        refs.append(([m.group(1)] + m.group(2).split("::")[1:], line))
    return refs


def resolve(path, here, modules):
    """The deepest known module a path points into, or None (external, std)."""
    if not path:
        return None
    head, rest = path[0], path[1:]
    if head == "crate":
        base = ()
    elif head == "self":
        base = here
    elif head == "super":
        base = here
        while rest is not None and head == "super":
            base = base[:-1]
            if rest and rest[0] == "super":
                head, rest = rest[0], rest[1:]
            else:
                break
    elif head in EXTERNAL_ROOTS:
        return None
    elif here + (head,) in modules:
        base, rest = here + (head,), rest
    elif (head,) in modules and here == ():
        base, rest = (head,), rest
    else:
        return None
    target = base
    for seg in rest:
        if target + (seg,) in modules:
            target = target + (seg,)
        else:
            break
    return target


def sccs(nodes, edges):
    """Tarjan's strongly connected components with more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def one_cycle(group, edges):
    """A shortest cycle through the group's first node, staying in the group."""
    start = group[0]
    members = set(group)
    prev, queue, seen = {}, [start], {start}
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in seen:
                seen.add(w)
                prev[w] = v
                queue.append(w)
    return group


def layer_node(module):
    """The layering's name for a module: its top-level module, with
    `registry`'s implementations apart from its seam."""
    if module[0] == "registry" and len(module) > 1 and module[1] != "requests":
        return "registry/*"
    return module[0]


def layering_breaks(edges, src):
    """Prints each import that goes up the layers; returns how many."""
    rank = {m: i for i, (_, members) in enumerate(LAYERS) for m in members}
    names = {i: name for i, (name, _) in enumerate(LAYERS)}
    found = 0
    for (a, b), where in sorted(edges.items()):
        for m in (a, b):
            if m not in rank:
                rank[m] = -1
                found += 1
                print(f"layering: module {m} is in no layer; add it to LAYERS in {sys.argv[0]}")
        if rank[a] < 0 or rank[b] < 0 or (a, b) in EXCEPTIONS:
            continue
        if rank[b] < rank[a] or (rank[b] == rank[a] and names[rank[a]] not in APART):
            continue
        found += 1
        file, line = where.rsplit(":", 1)
        with open(os.path.join(src, "..", file), encoding="utf-8") as f:
            text = f.read().split("\n")[int(line) - 1].strip()
        how = "a layer above it" if rank[b] > rank[a] else "another member of a layer kept apart"
        print(
            f"layering: {a} ({names[rank[a]]}) imports {b} ({names[rank[b]]}), "
            f"{how}\n    {where}: {text}"
        )
    return found


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "src")
    if not os.path.isdir(src):
        print(f"usage: {sys.argv[0]} [SRC_DIR]", file=sys.stderr)
        return 2
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs") and name != "tests.rs":
                path = os.path.join(dirpath, name)
                module = module_of(src, path)
                if module is not None:
                    files[module] = path
    modules = set(files)

    # edges[(level key)][from][to] = first "file:line"
    top = defaultdict(dict)
    layered = {}
    inner = defaultdict(lambda: defaultdict(dict))
    for module, path in sorted(files.items()):
        with open(path, encoding="utf-8") as f:
            text = strip_tests(strip_comments(f.read()))
        rel = os.path.relpath(path, os.path.join(src, ".."))
        for ref, line in references(text):
            target = resolve(ref, module, modules)
            if target is None or target == module or not module or not target:
                continue
            where = f"{rel}:{line}"
            if layer_node(module) != layer_node(target):
                layered.setdefault((layer_node(module), layer_node(target)), where)
            if module[0] != target[0]:
                top[module[0]].setdefault(target[0], where)
                continue
            # Same top-level folder: the deepest folder holding both.
            common = 0
            while common < min(len(module), len(target)) and module[common] == target[common]:
                common += 1
            if common < len(module) and common < len(target):
                folder = module[:common]
                a, b = module[common], target[common]
                inner[folder][a].setdefault(b, where)

    found = 0
    levels = [("top-level modules", "", top)] + [
        ("submodules of " + "/".join(folder) + "/", "/".join(folder) + "/", inner[folder])
        for folder in sorted(inner)
    ]
    for title, prefix, edges in levels:
        nodes = set(edges) | {w for ws in edges.values() for w in ws}
        for group in sccs(nodes, edges):
            found += 1
            cycle = one_cycle(group, edges)
            print(f"cycle among {title}: " + " -> ".join(prefix + m for m in cycle))
            for a in group:
                for b in sorted(edges.get(a, ())):
                    if b in group:
                        print(f"    {prefix}{a} -> {prefix}{b}  ({edges[a][b]})")
    breaks = layering_breaks(layered, src)
    if found:
        print(f"{found} import cycle(s)")
    if breaks:
        print(f"{breaks} layering break(s)")
    if found or breaks:
        return 1
    print("no import cycles, layering kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
