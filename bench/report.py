#!/usr/bin/env python3
"""Parsing and reporting for scripts/bench.sh (standard library only).

  report.py record ROWS TOOL OUTFILE [key=value ...]
      Parse one load-generator output (TOOL: wrk | h2load | hsload; for h2load a key
      h2log=PATH adds p50/p99 from its --log-file), merge the key=value pairs (server
      memory/CPU samples, labels), append one JSON line to ROWS and print a summary line.
      Exit 3 when more than 1 % of the requests failed or nothing succeeded.
  report.py summary ROWS RUN_ID TABLE_FILE
      Print the comparison table (ratios, targets PASS/FAIL) and write it to TABLE_FILE.
  report.py median RESULTS_JSONL RUN_ID...
      The same table over the median of each number across several runs (from
      results/bench/results.jsonl), e.g. to summarise repeated runs on a noisy machine.
  report.py orthanc RESULTS_JSONL RUN_ID...
      The rows behind Orthanc of each run, one line per round, with the ratios to nginx
      (the spread behind the medians).
Several rows for one test and target (rounds behind Orthanc, audit on/off rounds) are summarised
by their median.
"""
import json
import math
import re
import sys

MIB = 1024 * 1024


def num(v):
    """key=value values: int, float, or the string itself."""
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def seconds(text):
    """h2load durations: '10.00s', '905.12ms', '820us'."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot read duration {text!r}")
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def parse_wrk(text):
    m = re.search(r"^WRKJSON (.*)$", text, re.M)
    if not m:
        raise ValueError("wrk printed no WRKJSON summary line")
    d = json.loads(m.group(1))
    secs = d["duration_us"] / 1e6
    io_err = d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"]
    ok = max(d["requests"] - d["err_status"], 0)
    return {
        "elapsed_s": round(secs, 3),
        "ok": ok,
        "failed": io_err + d["err_status"],
        "rps": round(ok / secs, 1),
        "MBps": round(d["bytes"] / secs / 1e6, 2),
        "mean_ms": round(d["lat_mean_us"] / 1000, 3),
        "p50_ms": round(d["lat_p50_us"] / 1000, 3),
        "p99_ms": round(d["lat_p99_us"] / 1000, 3),
        "max_ms": round(d["lat_max_us"] / 1000, 3),
    }


def parse_h2load(text, logfile=None):
    fin = re.search(r"^finished in (\S+), ", text, re.M)
    req = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    st = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    traffic = re.search(r"^traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers.*?\((\d+)\) data",
                        text, re.M)
    if not (fin and req and st and traffic):
        raise ValueError("cannot read the h2load summary")
    secs = seconds(fin.group(1))
    ok2xx = int(st.group(1))
    non2xx = int(st.group(2)) + int(st.group(3)) + int(st.group(4))
    bad = int(req.group(5)) + int(req.group(6)) + int(req.group(7))
    out = {
        "elapsed_s": round(secs, 3),
        "ok": ok2xx,
        "failed": bad + non2xx,
        "rps": round(ok2xx / secs, 1),
        "MBps": round(int(traffic.group(3)) / secs / 1e6, 2),
        "data_bytes": int(traffic.group(3)),
    }
    proto = re.search(r"^Application protocol: (\S+)", text, re.M)
    out["alpn"] = proto.group(1) if proto else None
    tls = re.search(r"^TLS Protocol: (\S+)\nCipher: (\S+)\nServer Temp Key: (\S+)", text, re.M)
    if tls:
        out["tls"] = "/".join(tls.groups())
    if logfile:
        lat = sorted(int(line.split("\t")[2]) for line in open(logfile)
                     if line.count("\t") >= 2 and line.split("\t")[1] != "-1")
        if lat:
            out["p50_ms"] = round(percentile(lat, 50) / 1000, 3)
            out["p99_ms"] = round(percentile(lat, 99) / 1000, 3)
            out["mean_ms"] = round(sum(lat) / len(lat) / 1000, 3)
    return out


def parse_hsload(text):
    m = re.search(r"^HSJSON (.*)$", text, re.M)
    if not m:
        raise ValueError("hsload printed no HSJSON line")
    d = json.loads(m.group(1))
    return {
        "elapsed_s": d["elapsed_s"],
        "ok": d["ok"],
        "failed": d["failed"] + d["non200"],
        "resumed": d["resumed"],
        "rps": d["rate"],
        "MBps": None,
        "p50_ms": d["p50_ms"],
        "p99_ms": d["p99_ms"],
        "tls": f'{d["proto"]}/{d["cipher"]}/{d["group"]}',
    }


def record(rows, tool, outfile, pairs):
    extra = dict(p.split("=", 1) for p in pairs)
    text = open(outfile, errors="replace").read()
    if tool == "wrk":
        r = parse_wrk(text)
    elif tool == "h2load":
        r = parse_h2load(text, extra.pop("h2log", None))
    elif tool == "hsload":
        r = parse_hsload(text)
    else:
        raise SystemExit(f"unknown tool {tool}")
    row = {k: num(v) for k, v in extra.items()}
    row["tool"] = tool
    row.update(r)
    # Server-side numbers from /proc (kB and clock ticks) -> MiB and seconds.
    hz = row.pop("hz", 100)
    for k in ("rss_base_kb", "rss_peak_kb", "hwm_kb"):
        if k in row:
            row[k.replace("_kb", "_MiB")] = round(row.pop(k) / 1024, 1)
    if "cpu_ticks" in row:
        row["cpu_s"] = round(row.pop("cpu_ticks") / hz, 2)
        if row["ok"]:
            row["cpu_us_per_req"] = round(row["cpu_s"] * 1e6 / row["ok"], 1)
    with open(rows, "a") as f:
        f.write(json.dumps(row) + "\n")
    total = row["ok"] + row["failed"]
    line = (f'  {row.get("test", "?"):<13} {row.get("target", "?"):<9} {tool:<7}'
            f' {row["rps"]:>9.1f} req/s {fmt(row["MBps"]):>8} MB/s')
    if row.get("p99_ms") is not None:
        line += f'  p50 {row.get("p50_ms")} ms  p99 {row["p99_ms"]} ms'
    line += f'  ok {row["ok"]} failed {row["failed"]}'
    if "resumed" in row:
        line += f' resumed {row["resumed"]}'
    if "rss_peak_MiB" in row:
        line += f'  server: peak RSS {row["rss_peak_MiB"]} MiB (VmHWM {row.get("hwm_MiB")}), cpu {row.get("cpu_s")} s'
    print(line, flush=True)
    if row["ok"] == 0 or row["failed"] * 100 > total:
        print(f"  ERROR: {row['failed']} of {total} requests failed (> 1 %)", file=sys.stderr)
        sys.exit(3)


def fmt(v, digits=1):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def summary(rows_path, run_id, table_path):
    rows = [json.loads(line) for line in open(rows_path)]
    render(combine(rows), run_id, table_path, rows)


def run_rows(results_path, run_ids):
    return [r for r in (json.loads(line) for line in open(results_path)) if r.get("run") in run_ids]


def combine(all_rows):
    """One row per (test, target): the row itself, or the median of every numeric field."""
    groups = {}
    for r in all_rows:
        if "test" in r:
            groups.setdefault((r["test"], r["target"]), []).append(r)
    rows = []
    for (test, target), rs in groups.items():
        if len(rs) == 1:
            rows.append(rs[0])
            continue
        row = {"test": test, "target": target, "runs": len(rs)}
        for k in rs[0]:
            vals = sorted(r[k] for r in rs if isinstance(r.get(k), (int, float)))
            if isinstance(rs[0][k], bool):
                row[k] = all(r.get(k) is True for r in rs)
            elif vals and isinstance(rs[0][k], (int, float)):
                n = len(vals)
                row[k] = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
            elif k not in row:
                row[k] = rs[0][k]
        rows.append(row)
    return rows


def render(rows, run_id, table_path=None, raw=()):
    by = {(r["test"], r["target"]): r for r in rows}
    lines = []
    results = []  # (name, ok)

    def get(test, target, key):
        r = by.get((test, target))
        return None if r is None else r.get(key)

    def ratio(a, b):
        return a / b if a is not None and b else None

    hdr = (f"{'metric':<44}{'direct':>10}{'nginx':>10}{'vigie':>10}{'V/nginx':>9}{'V/direct':>9}"
           f"  {'target':<17}result")
    lines.append(hdr)
    lines.append("-" * len(hdr))

    def row(label, test, key, digits=1, target=None, direct_target=None):
        d, n, v = (get(test, t, key) for t in ("direct", "nginx", "vigie"))
        if not any(by.get((test, t)) for t in ("direct", "nginx", "vigie")):
            return  # a section this run did not measure (TESTS)
        rn, rd = ratio(v, n), ratio(v, d)
        tdesc, res = "", ""
        if target:  # (kind, factor) against nginx
            kind, f = target
            if v is not None and n:
                ok = (v >= f * n) if kind == ">=" else (v <= f * n)
                res = "PASS" if ok else "FAIL"
                results.append((f"{label}: vigie {kind} {f} x nginx", ok))
            tdesc = f"{kind} {f} x nginx"
        if direct_target and v is not None and d:
            ok = v >= direct_target * d
            res = "PASS" if ok else "FAIL"
            tdesc = f">= {direct_target} x direct"
            results.append((f"{label}: vigie >= {direct_target} x direct", ok))
        lines.append(f"{label:<44}{fmt(d, digits):>10}{fmt(n, digits):>10}{fmt(v, digits):>10}"
                     f"{fmt(rn, 2):>9}{fmt(rd, 2):>9}  {tdesc:<17}{res}")

    def rss_row(label, test):
        d, n, v = (get(test, t, "rss_peak_MiB") for t in ("direct", "nginx", "vigie"))
        if not any(by.get((test, t)) for t in ("direct", "nginx", "vigie")):
            return
        hw = get(test, "vigie", "hwm_MiB")
        res = ""
        if v is not None:
            peak = max(v, hw or 0)
            ok = peak < 64
            res = "PASS" if ok else "FAIL"
            results.append((f"{label}: vigie peak RSS {peak:.1f} MiB < 64 MiB", ok))
        lines.append(f"{label:<44}{fmt(d):>10}{fmt(n):>10}{fmt(v):>10}{fmt(ratio(v, n), 2):>9}"
                     f"{fmt(ratio(v, d), 2):>9}  {'< 64 MiB':<17}{res}")

    row("small h1 req/s (wrk, keep-alive)", "small_h1", "rps", 0, (">=", 1.0))
    row("small h1 p50 ms", "small_h1", "p50_ms", 2)
    row("small h1 p99 ms", "small_h1", "p99_ms", 2, ("<=", 1.2))
    row("small h1 server CPU us/request", "small_h1", "cpu_us_per_req", 1)
    row("small h2 req/s (h2load, 1 stream/conn)", "small_h2", "rps", 0, (">=", 1.0))
    row("small h2 p50 ms", "small_h2", "p50_ms", 2)
    row("small h2 p99 ms", "small_h2", "p99_ms", 2, ("<=", 1.2))
    row("small h2 server CPU us/request", "small_h2", "cpu_us_per_req", 1)
    row("download h1 MB/s (20 x 200 MiB, h2load)", "download_h1", "MBps", 0, None, 0.9)
    rss_row("download h1 server peak RSS MiB", "download_h1")
    row("download h1 server CPU s", "download_h1", "cpu_s", 2)
    row("download h2 MB/s (20 x 200 MiB, h2load)", "download_h2", "MBps", 0, None, 0.9)
    rss_row("download h2 server peak RSS MiB", "download_h2")
    row("download h2 server CPU s", "download_h2", "cpu_s", 2)
    row("new TLS conns/s (full handshake + GET)", "handshake", "rps", 0, (">=", 1.0))
    row("new TLS conns p99 ms", "handshake", "p99_ms", 2)
    row("server CPU us per new TLS conn", "handshake", "cpu_us_per_req", 1)
    if any(t.startswith("orthanc_") for t, _ in by):
        lines.append(f"{'behind Orthanc 1.10 (GET /system):':<44}")
        row("Orthanc h1 req/s (wrk, keep-alive)", "orthanc_h1", "rps", 0, (">=", 1.0))
        row("Orthanc h1 p50 ms", "orthanc_h1", "p50_ms", 2)
        row("Orthanc h1 p99 ms", "orthanc_h1", "p99_ms", 2, ("<=", 1.0))
        row("Orthanc h1 server CPU us/request", "orthanc_h1", "cpu_us_per_req", 1)
        row("Orthanc h1 peak connections to Orthanc", "orthanc_h1", "up_conns_peak", 0)
        row("Orthanc h2 req/s (h2load, 1 stream/conn)", "orthanc_h2", "rps", 0, (">=", 1.0))
        row("Orthanc h2 p50 ms", "orthanc_h2", "p50_ms", 2)
        row("Orthanc h2 p99 ms", "orthanc_h2", "p99_ms", 2, ("<=", 1.0))
        row("Orthanc h2 server CPU us/request", "orthanc_h2", "cpu_us_per_req", 1)
        row("Orthanc h2 peak connections to Orthanc", "orthanc_h2", "up_conns_peak", 0)

    # Access log on vs off (Vigie only).
    acc = []
    for test in ("small_h1", "small_h2"):
        off, on = by.get((test, "vigie")), by.get((test, "vigie+log"))
        if off and on:
            acc.append(f"  {test}: req/s {off['rps']:.0f} -> {on['rps']:.0f} "
                       f"({(on['rps'] / off['rps'] - 1) * 100:+.1f} %), p99 {off['p99_ms']:.2f} -> "
                       f"{on['p99_ms']:.2f} ms, CPU us/req {off.get('cpu_us_per_req')} -> "
                       f"{on.get('cpu_us_per_req')}")
    tls = {t: get("handshake", t, "tls") for t in ("nginx", "vigie")}
    tls_h2load = {t: get("small_h2", t, "tls") for t in ("nginx", "vigie")}
    resumed = {t: get("handshake", t, "resumed") for t in ("nginx", "vigie")}

    if len(lines) == 2:
        lines = []  # only sections with their own table ran (TESTS=audit)
    audit_lines = audit_table(by, raw, results)
    out = [f"== Vigie benchmark {run_id}", ""] + lines
    out += ["", "V = Vigie. direct = plain HTTP to the upstream (h1; h2 rows: cleartext h2c; "
            "Orthanc has no h2). MB = 10^6 bytes."]
    if any(tls.values()):
        out.append(f"Handshake rows (hsload): TLS {tls}; sessions resumed {resumed} (must be 0).")
    if any(tls_h2load.values()):
        out.append(f"h2load rows: TLS {tls_h2load} (AES-128-GCM: h2load's first choice and Vigie's "
                   "server order).")
    if acc:
        out += ["", "Vigie with log.access_log: true (level info, JSON to a file) vs false:"] + acc
    out += audit_lines
    out += ["", "Targets:"]
    out += [f"  {'PASS' if ok else 'FAIL'}  {name}" for name, ok in results]
    out.append(f"  {sum(ok for _, ok in results)} of {len(results)} targets met")
    text = "\n".join(out) + "\n"
    print(text)
    if table_path:
        with open(table_path, "w") as f:
            f.write(text)


AUDIT_TESTS = (
    ("small h1", "audit_small_h1", "wrk, keep-alive, /small.json"),
    ("small h2", "audit_small_h2", "h2load, 1 stream/conn"),
    ("images h1", "audit_images_h1", "wrk, 10 x 1,000 previews"),
)


def audit_table(by, raw, results):
    """Vigie with audit.record_access true (on) vs false (off): medians over the rounds, the
    ratios against the 5 % targets, each round's ratios, and the burst's check."""
    if not any(t.startswith("audit_") for t, _ in by):
        return []
    rounds = by.get(("audit_small_h1", "audit_on"), {}).get("runs", 1)
    hdr = f"{'metric':<44}{'off':>10}{'on':>10}{'on/off':>9}  {'target':<17}result"
    lines = ["", f"Audit trail: Vigie with audit.record_access true (on) vs false (off), "
             f"median of {rounds} round(s):", hdr, "-" * len(hdr)]
    for name, test, how in AUDIT_TESTS:
        off, on = by.get((test, "audit_off")), by.get((test, "audit_on"))
        if not (off and on):
            continue
        for key, label, digits, target in (
            ("rps", f"{name} req/s ({how})", 0, (">=", 0.95)),
            ("p99_ms", f"{name} p99 ms", 2, ("<=", 1.05)),
            ("cpu_us_per_req", f"{name} server CPU us/request", 1, None),
        ):
            a, b = off.get(key), on.get(key)
            r = b / a if a and b is not None else None
            tdesc, res = "", ""
            if target and r is not None:
                kind, f = target
                ok = r >= f if kind == ">=" else r <= f
                tdesc, res = f"{kind} {f} x off", "PASS" if ok else "FAIL"
                results.append((f"audit {label.split(' (')[0]}: on {kind} {f} x off", ok))
            lines.append(f"{label:<44}{fmt(a, digits):>10}{fmt(b, digits):>10}{fmt(r, 3):>9}"
                         f"  {tdesc:<17}{res}")
    # Each round's ratios: the spread behind the medians (the machine is shared).
    per = {}
    for r in raw:
        if str(r.get("test")).startswith("audit_") and r.get("target") in ("audit_on", "audit_off"):
            per.setdefault((r["test"], r.get("run"), r.get("round", 1)), {})[r["target"]] = r
    spread = []
    for name, test, _ in AUDIT_TESTS:
        cells = []
        for (t, run, rnd), pair in sorted(per.items(), key=lambda kv: (str(kv[0][1]), kv[0][2])):
            on, off = pair.get("audit_on"), pair.get("audit_off")
            if t != test or not (on and off) or not off.get("rps") or not off.get("p99_ms"):
                continue
            cells.append(f"r{rnd} {on['rps'] / off['rps']:.3f}/{on['p99_ms'] / off['p99_ms']:.3f}")
        if cells:
            spread.append(f"  {name:<10} " + "  ".join(cells))
    if spread:
        lines += ["Each round, on/off of req/s / p99:"] + spread
    burst = by.get(("audit_burst_trail", "trail"))
    rate = by.get(("audit_burst", "audit_on"))
    if burst:
        ok = bool(burst.get("pass"))
        results.append((f"audit burst: {burst['requests']:.0f} image requests -> "
                        f"{burst['expected_records']:.0f} study_access view records", ok))
        lines.append(
            f"burst: {burst['ok2xx']:.0f} of {burst['requests']:.0f} image requests answered 2xx"
            + (f" ({rate['rps']:.0f} req/s, h2, 1 connection)" if rate else "")
            + f";\n  trail: {burst['records']:.0f} study_access view records (want "
            f"{burst['expected_records']:.0f}), requests summing to {burst['requests_sum']:.0f}, "
            f"{burst['studies']:.0f} studies, {burst['unresolved']:.0f} unresolved; stop "
            f"{burst['stop_s']} s, exit {burst['vigie_exit']:.0f}; audit verify {burst['verify']}"
            f"  {'PASS' if ok else 'FAIL'}")
    return lines


def orthanc_rounds(results_path, run_ids):
    """Each run's and round's rows behind Orthanc, side by side, with the ratios to nginx."""
    rows = [json.loads(line) for line in open(results_path)]
    rows = [r for r in rows if r.get("run") in run_ids and str(r.get("test")).startswith("orthanc_")]
    keys = sorted({(r["run"], r.get("round", 1), r["test"]) for r in rows if r["target"] != "direct"})
    print(f"{'run':<22}{'round':>6} {'test':<11}{'nginx req/s':>12}{'vigie req/s':>12}{'ratio':>7}"
          f"{'nginx p99':>11}{'vigie p99':>11}{'ratio':>7}{'conns n/v':>11}")
    for run, rnd, test in keys:
        pick = {r["target"]: r for r in rows
                if (r["run"], r.get("round", 1), r["test"]) == (run, rnd, test)}
        n, v = pick.get("nginx", {}), pick.get("vigie", {})
        rr = v.get("rps", 0) / n["rps"] if n.get("rps") else None
        rp = v.get("p99_ms", 0) / n["p99_ms"] if n.get("p99_ms") else None
        print(f"{run:<22}{rnd:>6} {test:<11}{fmt(n.get('rps'), 0):>12}{fmt(v.get('rps'), 0):>12}"
              f"{fmt(rr, 2):>7}{fmt(n.get('p99_ms'), 2):>11}{fmt(v.get('p99_ms'), 2):>11}{fmt(rp, 2):>7}"
              f"{str(n.get('up_conns_peak', '-')) + '/' + str(v.get('up_conns_peak', '-')):>11}")


def main(argv):
    if len(argv) >= 4 and argv[1] == "record":
        record(argv[2], argv[3], argv[4], argv[5:])
    elif len(argv) == 5 and argv[1] == "summary":
        summary(argv[2], argv[3], argv[4])
    elif len(argv) >= 4 and argv[1] == "median":
        runs = argv[3:]
        raw = run_rows(argv[2], runs)
        render(combine(raw), f"median of {len(runs)} runs: {' '.join(runs)}", None, raw)
    elif len(argv) >= 4 and argv[1] == "orthanc":
        orthanc_rounds(argv[2], argv[3:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
