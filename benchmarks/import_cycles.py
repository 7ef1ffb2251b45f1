"""Print every import cycle among the project's modules (strongly connected components of grimp's graph).

``lint-imports`` (the ``acyclic_siblings`` contract in pyproject.toml) fails on a cycle between sibling
modules or packages; this script lists the modules of each cycle, lazy imports inside functions and
``TYPE_CHECKING`` imports included, for when one needs untangling. Run: ``.venv/bin/python
benchmarks/import_cycles.py``; it exits 1 when there is a cycle.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("engine", "training", "dermviewer", "resources")


def import_cycles(packages: tuple[str, ...] = PACKAGES) -> list[list[str]]:
    graph = grimp.build_graph(*packages)
    modules = sorted(m for m in graph.modules if m.split(".")[0] in packages)
    known = set(modules)
    edges = {m: sorted(known & graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in modules:  # Tarjan's algorithm, iteratively (no recursion limit on deep graphs)
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def main() -> int:
    cycles = import_cycles()
    for c in cycles:
        print("cycle:", " <-> ".join(c))
    print(f"{len(cycles)} import cycle(s) among {', '.join(PACKAGES)}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
