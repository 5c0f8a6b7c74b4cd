"""Attributes the samples of a `perf script` dump (DWARF call graphs) of one
usher process to what it was doing, for bench/profile.sh:
  - by thread: the writer (WriteBatcher::run), its completion thread
    (WriteBatcher::complete), the HTTP I/O threads (asio's scheduler), the
    worker threads, the rest;
  - the writer's batch (WriteBatcher::run_batch) split into the writes
    themselves, the per-write SAVEPOINT/RELEASE statements, BEGIN and COMMIT,
    and its WAL checkpoints between batches (WriteBatcher::bound_wal);
  - malloc/free (and operator new/delete) by the nearest caller of ours.
Usage: perf script -F comm,tid,ip,sym,dso | python3 perf_attribution.py US UNIT
(US: usher's CPU microseconds per request or user, UNIT: "request"/"user").
"""
import collections
import re
import sys

us, unit = float(sys.argv[1]), sys.argv[2]


def short(sym):
    sym = re.sub(r"\(anonymous namespace\)", "(anon)", sym)
    for _ in range(12):
        sym = re.sub(r"<[^<>]*>", "", sym)
    sym = re.sub(r"\([^()]*\)", "", sym)
    return sym.replace("json_abi_v3_11_2::", "").replace("nlohmann::", "json::")[:90]


samples = []
stack = []
for line in sys.stdin:
    if not line.strip():
        if stack:
            samples.append(stack)
        stack = []
        continue
    if line[0] in " \t":
        m = re.match(r"\s*[0-9a-f]+ (.*) \((.*)\)$", line.rstrip())
        if m:
            stack.append((m.group(1), m.group(2).rsplit("/", 1)[-1]))
if stack:
    samples.append(stack)
n = len(samples) or 1


def pr(title, counter, limit=12):
    print(f"\n{title}")
    for k, v in counter.most_common(limit):
        print(f"  {v / n * 100:5.1f} %  {v / n * us:6.1f} us  {k}")


threads = collections.Counter()
batch = collections.Counter()
alloc = collections.Counter()
alloc_re = re.compile(r"^(malloc|free|cfree|_int_malloc|_int_free|_int_realloc|realloc|calloc|"
                      r"sysmalloc|malloc_consolidate|unlink_chunk|tcache|__GI___libc_(malloc|free|realloc)|"
                      r"__libc_(malloc|free|calloc|realloc)|operator new|operator delete)")
for st in samples:
    syms = [s for s, _ in st]
    text = " ".join(syms)
    if "WriteBatcher::complete" in text:
        threads["writer's completion thread (Done after the commit)"] += 1
    elif "WriteBatcher::run" in text:
        threads["writer thread (group commit)"] += 1
        if "WriteBatcher::bound_wal" in text:
            batch["WAL checkpoints between batches (bound_wal)"] += 1
    elif "usher::worker::" in text:
        threads["worker threads"] += 1
    elif "asio::detail::scheduler::run" in text or "asio::" in text or "restinio::" in text:
        threads["HTTP I/O threads (RESTinio, asio)"] += 1
    else:
        threads["other: " + short(syms[-3] if len(syms) >= 3 else syms[-1])] += 1
    # run_batch: what its immediate callee of ours is.
    for i, s in enumerate(syms):
        if "WriteBatcher::run_batch" in s:
            below = syms[:i]
            btext = " ".join(below)
            if "sqlite3_exec" in btext and ("CommitPhase" in btext or "Commit" in btext):
                batch["COMMIT (WAL write and fsync)"] += 1
            elif "::commit" in btext or "Commit" in btext:
                batch["COMMIT (WAL write and fsync)"] += 1
            elif "begin_write" in btext:
                batch["BEGIN"] += 1
            elif any("WriteContext" in b or "::write" in b or "Provisioner" in b for b in below):
                batch["the writes themselves (statements, JSON, tokens)"] += 1
            elif "statement_impl::execute" in btext:
                batch["SAVEPOINT / RELEASE around each write"] += 1
            elif not below:
                batch["run_batch itself"] += 1
            else:
                batch["other: " + short(below[-1])] += 1
            break
    # The leaf's own frames: inlined ones (dso "inlined") and the first real one.
    k = next((i for i, (_, d) in enumerate(st) if d != "inlined"), len(st) - 1)
    leaf = st[:k + 1]
    if (st[k][1].startswith("libc.so") and any(alloc_re.match(s) for s, _ in leaf)) or \
            st[k][0].startswith(("operator new", "operator delete")):
        caller = next((short(s) for s, d in st[k + 1:] if d == "usher" and
                       not s.startswith(("operator new", "operator delete", "std::", "__gnu_cxx"))),
                      "(no caller of ours)")
        alloc[caller] += 1

pr(f"samples by thread ({n} samples; us per {unit}):", threads)
if batch:
    pr("the writer's batches (run_batch) by step, and its checkpoints:", batch)
if alloc:
    pr("malloc/free by the nearest function of ours or of a compiled-in library:", alloc, 15)
