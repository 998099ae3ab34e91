#!/usr/bin/env python3
"""Mutation testing: plants each mutant of tests/mutants.tsv in the product, one at a
time, runs the tests that should notice it, and prints the score.

    python3 scripts/mutate.py [--only ID[,ID…]] [--list] [--build DIR] [--no-baseline]

Each line of tests/mutants.tsv (tab-separated; '#' starts a comment line) is

    id  file  original  replacement  tests  description

`original` is text that must occur exactly once in `file` (text, never a line number: the
files change under us); a mutant whose text is missing or ambiguous is refused before
anything runs, so a stale mutant is noticed, not silently skipped. In `original` and
`replacement`, \\n is a newline, \\t a tab and \\\\ a backslash. `tests` is a space-separated
list: a bare name is a unit test (`meson test NAME`), `file.py` or `file.py:Class.test` an
integration test (tests/integration/run.py, the daemon built in the same build).

For each mutant: the file is written mutated, the build (non-sanitizer, debugoptimized, in
DIR, build-mutate by default) is brought up to date, the tests run until one fails. A
mutant is killed when a test fails (or times out), survived when every test passes,
stillborn when it does not compile (reported apart, out of the score). The original file is
always put back, whatever happens. The script refuses to start when src/ has uncommitted
changes (it could not tell ours from yours). Before the mutants, every test named runs once
on the unmutated build (the baseline): a test that fails there would "kill" everything.

Exit status: 0 when the score killed / (killed + survived) is at least 95 %, 1 below, 2
when the list or the work tree is not usable.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = os.path.join(ROOT, "tests", "mutants.tsv")
THRESHOLD = 0.95
UNIT_TIMEOUT_S = 120
INTEGRATION_TIMEOUT_S = 600


class Mutant:
    def __init__(self, line_no, fields):
        self.line_no = line_no
        self.id, self.file, orig, repl, tests, self.description = fields
        self.original, self.replacement = unescape(orig), unescape(repl)
        self.tests = tests.split()
        self.outcome, self.by, self.seconds = None, None, 0.0


def unescape(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def load(path):
    mutants, problems, seen = [], [], set()
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 6:
                problems.append(f"{path}:{no}: {len(fields)} tab-separated fields, want 6")
                continue
            m = Mutant(no, fields)
            if m.id in seen:
                problems.append(f"{path}:{no}: mutant id {m.id} given twice")
            seen.add(m.id)
            if not m.tests:
                problems.append(f"{path}:{no}: {m.id}: no tests named")
            if m.original == m.replacement:
                problems.append(f"{path}:{no}: {m.id}: the replacement is the original")
            target = os.path.join(ROOT, m.file)
            if not os.path.isfile(target):
                problems.append(f"{path}:{no}: {m.id}: no file {m.file}")
            else:
                n = open(target, encoding="utf-8").read().count(m.original)
                if n != 1:
                    problems.append(f"{path}:{no}: {m.id}: the original text occurs {n} times "
                                    f"in {m.file} (must be exactly once): stale or ambiguous")
            mutants.append(m)
    return mutants, problems


def src_is_clean():
    r = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT,
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() == "", r.stdout.strip()


def setup_build(build):
    if not os.path.isfile(os.path.join(build, "build.ninja")):
        r = subprocess.run(["meson", "setup", build, "--buildtype=debugoptimized"], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("mutate: meson setup failed:\n" + r.stdout + r.stderr)


def targets_of(tests):
    t = set()
    for name in tests:
        t.add("orderbridge" if ".py" in name else f"tests/test_{name}")
    return sorted(t)


def ninja(build, targets):
    r = subprocess.run(["ninja", "-C", build] + targets, cwd=ROOT, capture_output=True,
                       text=True)
    return r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def run_test(build, name):
    """True when the test passes; the second value is the tail of its output."""
    if name.startswith("package/"):  # tests/package/test_package.py[:Class.test]
        _, _, case = name.partition(":")
        cmd = [sys.executable, os.path.join(ROOT, "tests", "package", "test_package.py"),
               "--build", build] + (["-k", case] if case else [])
        timeout = INTEGRATION_TIMEOUT_S
    elif ".py" in name:
        file, _, case = name.partition(":")
        cmd = [sys.executable, os.path.join(ROOT, "tests", "integration", "run.py"),
               "--bin", os.path.join(build, "orderbridge"), "--pattern", file]
        if case:
            cmd += ["-k", case]
        timeout = INTEGRATION_TIMEOUT_S
    else:
        cmd = ["meson", "test", "-C", build, "--no-rebuild", "--print-errorlogs", name]
        timeout = UNIT_TIMEOUT_S
    env = dict(os.environ, ORDERBRIDGE_ALLOW_SKIP="0")
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                           env=env, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")
        return False, f"timed out after {timeout} s " + (out.decode(errors="replace")
                                                         if isinstance(out, bytes) else out)[-800:]
    return r.returncode == 0, (r.stdout + r.stderr)[-1500:]


def try_mutant(m, build, verbose):
    path = os.path.join(ROOT, m.file)
    with open(path, encoding="utf-8") as f:
        original = f.read()
    start = time.monotonic()
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original.replace(m.original, m.replacement, 1))
        ok, log = ninja(build, targets_of(m.tests))
        if not ok:
            m.outcome, m.by = "stillborn", log.strip().splitlines()[-1:] or [""]
            m.by = m.by[0][:100]
            return
        m.outcome = "survived"
        for t in m.tests:
            passed, out = run_test(build, t)
            if not passed:
                m.outcome, m.by = "killed", t
                if verbose:
                    print(out)
                break
    finally:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original)
        m.seconds = time.monotonic() - start


def main():
    ap = argparse.ArgumentParser(description="plant each mutant, run its tests, print the score")
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-mutate"))
    ap.add_argument("--mutants", default=MUTANTS)
    ap.add_argument("--no-baseline", action="store_true",
                    help="do not run the tests on the unmutated build first")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the killing output")
    args = ap.parse_args()

    mutants, problems = load(args.mutants)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.id for m in mutants}
        if unknown:
            problems.append("unknown mutant id(s): " + ", ".join(sorted(unknown)))
        mutants = [m for m in mutants if m.id in wanted]
    if args.list:
        for m in mutants:
            print(f"{m.id:<22} {m.file:<30} {' '.join(m.tests)}\n{'':<22} {m.description}")
    if problems:
        print("mutate: the mutant list is not usable:\n  " + "\n  ".join(problems))
        return 2
    if args.list:
        return 0
    clean, status = src_is_clean()
    if not clean:
        print("mutate: src/ has uncommitted changes; commit or stash them first:\n" + status)
        return 2

    # SIGTERM unwinds like ^C, so that the planted file is put back (try_mutant's finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("mutate: terminated"))
    began = time.monotonic()
    build = os.path.abspath(args.build)
    setup_build(build)
    ok, log = ninja(build, [])
    if not ok:
        print("mutate: the unmutated build fails:\n" + log)
        return 2
    if not args.no_baseline:
        for t in sorted({t for m in mutants for t in m.tests}):
            passed, out = run_test(build, t)
            print(f"baseline {t}: {'ok' if passed else 'FAILS'}", flush=True)
            if not passed:
                print(out)
                print("mutate: a test fails without any mutant; fix that first")
                return 2
    try:
        for i, m in enumerate(mutants, 1):
            try_mutant(m, build, args.verbose)
            print(f"[{i}/{len(mutants)}] {m.id:<22} {m.outcome:<9} {m.seconds:6.1f}s "
                  f"{m.by or ''}", flush=True)
    finally:
        ninja(build, [])  # the build matches the work tree again

    killed = [m for m in mutants if m.outcome == "killed"]
    survived = [m for m in mutants if m.outcome == "survived"]
    stillborn = [m for m in mutants if m.outcome == "stillborn"]
    print(f"\n{'id':<22} {'outcome':<9} {'time':>7}  file / killed by / description")
    for m in mutants:
        print(f"{m.id:<22} {m.outcome:<9} {m.seconds:6.1f}s  {m.file}  "
              f"{m.by if m.outcome == 'killed' else ''}\n{'':<41}{m.description}")
    scored = len(killed) + len(survived)
    score = len(killed) / scored if scored else 0.0
    minutes = (time.monotonic() - began) / 60
    print(f"\nmutants: {len(mutants)}  killed: {len(killed)}  survived: {len(survived)}  "
          f"stillborn: {len(stillborn)}  time: {minutes:.1f} min")
    for m in survived:
        print(f"SURVIVED: {m.id} ({m.file}): {m.description}")
    for m in stillborn:
        print(f"STILLBORN: {m.id} ({m.file}): {m.by}")
    print(f"mutation score: {len(killed)}/{scored} = {100 * score:.1f}% "
          f"(threshold {100 * THRESHOLD:.0f}%)")
    return 0 if scored and score >= THRESHOLD else 1


if __name__ == "__main__":
    sys.exit(main())
