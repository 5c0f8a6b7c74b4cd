#!/usr/bin/env python3
"""Checks the folder-level dependencies of src/usher (ARCHITECTURE.md).

Fails when two folders include each other, directly or through others (an
include cycle between folders); when a file other than http/server.*
includes RESTinio (handlers take request values; the server alone knows the
wire); when a file in http/ includes SOCI or names soci:: (handlers call
domain services, which own the database sessions); and when a string literal
in app/ or cli/ is an SQL statement (SQL lives in named constants next to the
domain code that runs it). Usage: check_includes.py [SRC_DIR] (default:
src/usher beside this script's repository). Prints the folder graph with
--graph.
"""
import re
import sys
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.MULTILINE)
RESTINIO_ALLOWED = {"http/server.cpp", "http/server.hpp"}
# Folders whose files may neither include SOCI nor name soci:: at all.
NO_SOCI_FOLDERS = {"http"}
SOCI_NAME = re.compile(r"\bsoci::")
# Folders that compose (app/, cli/): they may pass sessions to domain
# functions, but hold no SQL of their own (a literal that starts with an
# upper-case SQL keyword).
NO_SQL_FOLDERS = {"app", "cli"}
SQL_LITERAL = re.compile(
    r'"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|BEGIN|COMMIT|ROLLBACK|'
    r'SAVEPOINT|VACUUM|WITH|LISTEN|NOTIFY|TRUNCATE)\s')
COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def folder_graph(src: Path):
    graph = {}
    restinio = []
    soci = []
    sql = []
    for path in sorted(src.rglob("*")):
        if path.suffix not in {".cpp", ".hpp"}:
            continue
        rel = path.relative_to(src).as_posix()
        folder = rel.split("/")[0] if "/" in rel else "."
        graph.setdefault(folder, {})
        text = path.read_text(encoding="utf-8", errors="replace")
        code = COMMENT.sub("", text)
        if folder in NO_SOCI_FOLDERS and SOCI_NAME.search(code):
            soci.append(rel)
        if folder in NO_SQL_FOLDERS and SQL_LITERAL.search(code):
            sql.append(rel)
        for target in INCLUDE.findall(text):
            if target.startswith("restinio/") and rel not in RESTINIO_ALLOWED:
                restinio.append(rel)
            if target.startswith("soci/") and folder in NO_SOCI_FOLDERS:
                soci.append(rel)
            if not target.startswith("usher/"):
                continue
            parts = target.split("/")
            if len(parts) < 3:
                continue
            other = parts[1]
            if other != folder:
                graph[folder].setdefault(other, []).append(rel)
    return graph, sorted(set(restinio)), sorted(set(soci)), sorted(set(sql))


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
    graph, restinio, soci, sql = folder_graph(src)
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
    for rel in soci:
        failed = True
        print(f"SOCI included or soci:: named in {rel} (handlers call domain services)")
    for rel in sql:
        failed = True
        print(f"an SQL statement in a string literal of {rel} (SQL belongs to a domain folder)")
    if not failed:
        print(f"ok: {len(graph)} folders, no include cycles, RESTinio only in http/server.*, "
              "no SOCI in http/, no SQL in app/ or cli/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
