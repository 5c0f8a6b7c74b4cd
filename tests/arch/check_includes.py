#!/usr/bin/env python3
"""Checks the folder-level dependencies of src/usher (ARCHITECTURE.md).

Fails when two folders include each other, directly or through others (an
include cycle between folders), and when a file other than http/server.*
includes RESTinio (handlers take request values; the server alone knows the
wire). Usage: check_includes.py [SRC_DIR] (default: src/usher beside this
script's repository). Prints the folder graph with --graph.
"""
import re
import sys
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.MULTILINE)
RESTINIO_ALLOWED = {"http/server.cpp", "http/server.hpp"}


def folder_graph(src: Path):
    graph = {}
    restinio = []
    for path in sorted(src.rglob("*")):
        if path.suffix not in {".cpp", ".hpp"}:
            continue
        rel = path.relative_to(src).as_posix()
        folder = rel.split("/")[0] if "/" in rel else "."
        graph.setdefault(folder, {})
        text = path.read_text(encoding="utf-8", errors="replace")
        for target in INCLUDE.findall(text):
            if target.startswith("restinio/") and rel not in RESTINIO_ALLOWED:
                restinio.append(rel)
            if not target.startswith("usher/"):
                continue
            parts = target.split("/")
            if len(parts) < 3:
                continue
            other = parts[1]
            if other != folder:
                graph[folder].setdefault(other, []).append(rel)
    return graph, sorted(set(restinio))


def cycles(graph):
    """Strongly connected components with more than one folder (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    src = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "src" / "usher"
    graph, restinio = folder_graph(src)
    if "--graph" in argv:
        for folder in sorted(graph):
            print(f"{folder}: {' '.join(sorted(graph[folder]))}")
    failed = False
    for component in cycles(graph):
        failed = True
        print(f"include cycle between folders: {' <-> '.join(component)}")
        for a in component:
            for b in component:
                for rel in graph[a].get(b, [])[:3]:
                    print(f"  {rel} includes usher/{b}/...")
    for rel in restinio:
        failed = True
        print(f"RESTinio included outside http/server.*: {rel}")
    if not failed:
        print(f"ok: {len(graph)} folders, no include cycles, RESTinio only in http/server.*")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
