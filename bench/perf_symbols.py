"""Names the frames `perf script` left as `[unknown]` in binaries it could
not read the symbol table of, for bench/profile.sh. Debian 12's perf 6.1
(linux-perf 6.1.187, libelf 0.188) on this project's VM resolved only the
shared libraries' dynamic symbols: every frame in usher itself came out as
an address, so the writer could not be told from the HTTP threads. perf
script prints such a frame's address relative to its file; `nm` gives the
symbols of that file.
Usage: perf script -F comm,tid,ip,sym,dso | python3 perf_symbols.py
"""
import bisect
import re
import subprocess
import sys

tables = {}  # path -> (sorted start addresses, names)


def table(path):
    if path not in tables:
        starts, names = [], []
        try:
            out = subprocess.run(["nm", "-C", "--defined-only", path], capture_output=True,
                                 text=True, check=False).stdout
        except OSError:
            out = ""
        rows = []
        for line in out.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in "TtWw":
                rows.append((int(parts[0], 16), parts[2]))
        rows.sort()
        for start, name in rows:
            starts.append(start)
            names.append(name)
        tables[path] = (starts, names)
    return tables[path]


frame = re.compile(r"^(\s+)([0-9a-f]+) \[unknown\] \((/[^)]*)\)$")
for line in sys.stdin:
    m = frame.match(line.rstrip("\n"))
    if m:
        starts, names = table(m.group(3))
        i = bisect.bisect_right(starts, int(m.group(2), 16)) - 1
        if i >= 0:
            line = f"{m.group(1)}{m.group(2)} {names[i]} ({m.group(3)})\n"
    sys.stdout.write(line)
