#!/usr/bin/env python3
"""Lists the dependency cycles between Vigie's modules: groups of modules that reach each other
through `crate::…` paths (A names B, B names C, C names A; top-level modules, and inside one
folder its files, `super::` included). Comments and `#[cfg(test)]` parts are left out.
Exit 1 when a cycle is found that is not in KNOWN below (empty: none is allowed).
Run from anywhere: scripts/module-cycles.py [--all]  (--all: also print the known ones)."""
import collections
import os
import re
import sys

# Cycles tolerated for now, as sorted tuples of module names. Keep it empty.
KNOWN = set()

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
NAME = re.compile(r"^[a-z_]+$")


def module_of(path):
    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def references(src):
    """(module, submodule or '') pairs named through `crate::`."""
    refs = re.findall(r"crate::([a-z_]+)(?:::([a-z_]+))?", src)
    for group in re.findall(r"crate::\{([^}]*)\}", src):
        for item in group.split(","):
            item = item.strip().split("::")
            if item and NAME.match(item[0]):
                sub = item[1] if len(item) > 1 and NAME.match(item[1]) else ""
                refs.append((item[0], sub))
    return refs


def edges():
    out = collections.defaultdict(set)
    for d, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            m = module_of(path)
            if not m:
                continue
            with open(path, encoding="utf-8") as fh:
                src = fh.read().split("#[cfg(test)]")[0]
            src = "\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
            for top, sub in references(src):
                if top != m[0]:
                    out[m[0]].add(top)
                elif len(m) > 1 and sub and sub != m[1]:
                    out[f"{m[0]}/{m[1]}"].add(f"{m[0]}/{sub}")
            if len(m) > 1:
                for sub in re.findall(r"super::([a-z_]+)", src):
                    if sub != m[1]:
                        out[f"{m[0]}/{m[1]}"].add(f"{m[0]}/{sub}")
    return out


def cycles(e):
    """Strongly connected groups of two or more modules (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    nodes = sorted(set(e) | {b for bs in e.values() for b in bs})

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(e.get(v, ())):
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
                out.append(tuple(sorted(group)))

    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(out)


def main():
    found = cycles(edges())
    new = [c for c in found if c not in KNOWN]
    for c in found if "--all" in sys.argv else new:
        print(" -> ".join(c) + ("" if c in KNOWN else "  (new)"))
    gone = sorted(KNOWN - set(found))
    print(f"{len(found)} module cycles, {len(new)} new"
          + (f"; remove from KNOWN: {gone}" if gone else ""))
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
