#!/usr/bin/env python3
"""Lists the two-way dependencies between Vigie's modules: pairs A, B where code in A names
`crate::B…` and code in B names `crate::A…` (top-level modules; inside one folder, its files).
Comments and `#[cfg(test)]` parts are left out. Exit 1 when a pair is found that is not in
KNOWN below: KNOWN only ever shrinks, as issue 9 untangles the rest.
Run from anywhere: scripts/module-cycles.py [--all]  (--all: print every pair, known or not)."""
import collections
import os
import re
import sys

# Cycles that remain, to be removed (issue 9: config owns no policy, auth or tls types).
KNOWN = {
    ("auth", "config"),
    ("config", "policy"),
    ("config", "tls"),
}

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


def main():
    e = edges()
    pairs = sorted({tuple(sorted((a, b))) for a in e for b in e[a] if a in e.get(b, ())})
    new = [p for p in pairs if p not in KNOWN]
    for p in pairs if "--all" in sys.argv else new:
        print(f"{p[0]} <-> {p[1]}{'' if p in KNOWN else '  (new)'}")
    gone = sorted(KNOWN - set(pairs))
    print(f"{len(pairs)} two-way module dependencies, {len(new)} new"
          + (f"; remove from KNOWN: {gone}" if gone else ""))
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
