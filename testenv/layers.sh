#!/usr/bin/env bash
# testenv/layers.sh — checks the import rule of docs/ARCHITECTURE.md ("Layers"): a
# module of src/ imports only modules of a lower layer or its own, and the modules
# form no circle. Reads every `crate::<module>` path in src/ (tests of a module
# excluded). Exit 1 and the offending lines when the rule is broken.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - <<'PY'
import re, pathlib, sys, collections
LAYER = {"error": 0, "position": 0, "model": 0, "telemetry": 0, "tls": 0, "pipeline": 1,
         "mysql": 2, "kafka": 2, "output": 2, "redis": 2, "zookeeper": 2,
         "config": 3, "ops": 4, "daemon": 5}
bad, edges = [], collections.defaultdict(set)
for p in sorted(pathlib.Path("src").rglob("*.rs")):
    rel = p.relative_to("src").parts
    if rel[0] in ("main.rs", "lib.rs", "cli"):
        continue
    me = rel[0].removesuffix(".rs")
    text = p.read_text()
    text = text.split("#[cfg(test)]")[0]  # a module's tests may use anything
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("//"):
            continue
        for other in re.findall(r"crate::([a-z_]+)", line):
            if other == me:
                continue
            if other not in LAYER:
                bad.append(f"{p}:{n}: unknown module {other} (add it to testenv/layers.sh)")
                continue
            edges[me].add(other)
            if LAYER[other] > LAYER[me]:
                bad.append(f"{p}:{n}: {me} (layer {LAYER[me]}) imports {other} (layer {LAYER[other]}): {line.strip()}")
# circles between modules
def cycle():
    color = {}
    def visit(m, path):
        color[m] = 1
        for o in edges[m]:
            if color.get(o) == 1:
                return path + [o]
            if o not in color:
                c = visit(o, path + [o])
                if c:
                    return c
        color[m] = 2
    for m in list(edges):
        if m not in color:
            c = visit(m, [m])
            if c:
                return c
c = cycle()
if c:
    bad.append("import circle: " + " -> ".join(c))
for b in bad:
    print(b)
print(f"layers: {sum(len(v) for v in edges.values())} module imports checked, {len(bad)} problem(s)")
sys.exit(1 if bad else 0)
PY
