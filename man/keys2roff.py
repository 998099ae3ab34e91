#!/usr/bin/env python3
"""orderbridge.conf(5), written at build time from the daemon's own key table.

Runs `orderbridge --keys` (config_print_keys: every [section] with its keys, help,
default and range, then the free-form map sections) and turns it into roff, so the man
page lists exactly the keys the binary reads and cannot drift from them. A line it cannot
read fails the build rather than leaving a key out.
"""
import argparse
import re
import subprocess
import sys

# "[bitrix24.site <LID>]": a family of sections, one per storefront
SECTION = re.compile(r"^\[([a-z0-9_.]+(?: <[A-Z]+>)?)\]$")
# "  name<padding>help (default X) [MIN..MAX]"; the name is a config key, lower case
KEY = re.compile(r"^  ([a-z][a-z0-9_]*) +(\S.*)$")
DEFAULT_RANGE = re.compile(r"^(.*?)(?: \(default (.*)\))?(?: \[(-?\d+)\.\.(-?\d+)\])?$")


def esc(text):
    """Text as roff reads it: backslashes and hyphens literal, ASCII only."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ord(ch) > 127:
            out.append("\\[u%04X]" % ord(ch))
        else:
            out.append(ch)
    line = "".join(out)
    return "\\&" + line if line.startswith((".", "'")) else line


def parse(text):
    """[(section, [(key, help, default, range)] or None, [free-form lines])] in order."""
    sections = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = SECTION.match(line)
        if m:
            sections.append([m.group(1), None, []])
            continue
        if not sections:
            raise ValueError(f"line {n}: text before the first [section]: {line!r}")
        sec = sections[-1]
        key = KEY.match(line)
        # a section whose first line is a key lists keys; after the keys come the
        # free-form map sections, whose lines are text
        if sec[1] is None and not sec[2] and key and not any(s[1] is None for s in sections[:-1]):
            sec[1] = []
        if sec[1] is not None:
            if not key:
                raise ValueError(f"line {n}: not a key line in [{sec[0]}]: {line!r}")
            m = DEFAULT_RANGE.match(key.group(2))
            rng = f"{m.group(3)}..{m.group(4)}" if m.group(3) is not None else None
            sec[1].append((key.group(1), m.group(1), m.group(2), rng))
        else:
            sec[2].append(line[2:] if line.startswith("  ") else line)
    if not any(s[1] for s in sections):
        raise ValueError("no keys at all")
    return sections


def roff(sections, version, examples):
    o = [
        f'.TH ORDERBRIDGE.CONF 5 "" "orderbridge {version}" "File Formats"',
        ".nh",
        ".ad l",
        ".SH NAME",
        "orderbridge.conf \\- configuration of the orderbridge daemon",
        ".SH SYNOPSIS",
        ".B /etc/orderbridge/orderbridge.conf",
        ".SH DESCRIPTION",
        "An INI file: \\fB[section]\\fR headers, \\fIkey\\fR \\fB=\\fR \\fIvalue\\fR lines, "
        "comments after \\fB;\\fR or \\fB#\\fR.",
        "Every verb of",
        ".BR orderbridge (8)",
        "reads it (\\fB\\-c\\fR \\fIFILE\\fR);",
        ".B orderbridge check \\-c",
        ".I FILE",
        "reports every problem in it as \\fIFILE\\fR:\\fILINE\\fR.",
        "An unknown section or key, a value out of its range or of the wrong type is an",
        "error, never ignored.",
        ".PP",
        "Secrets are never written in this file: each \\fB*_file\\fR key names a file that",
        "holds one (not readable by other users), or the environment variable named with",
        "the key holds it.",
        ".PP",
        "This page is generated from the daemon's own key table; \\fBorderbridge \\-\\-keys\\fR",
        "prints the same list.",
    ]
    keyed = [s for s in sections if s[1] is not None]
    free = [s for s in sections if s[1] is None]
    o.append(".SH KEYS")
    for name, keys, _ in keyed:
        o.append(f".SS [{esc(name)}]")
        for key, help_, default, rng in keys:
            o += [".TP", f".B {esc(key)}", esc(help_)]
            facts = []
            if default is not None:
                # a default with an edge space ("Order ") is quoted so the space shows
                shown = f'"{default}"' if default != default.strip() else default
                facts.append(f"Default: \\fB{esc(shown)}\\fR.")
            if rng is not None:
                facts.append(f"Range: {esc(rng)}.")
            if facts:
                o += [".br", " ".join(facts)]
    if free:
        o.append(".SH MAPS")
        o.append("Sections of free\\-form \\fIname\\fR \\fB=\\fR \\fIvalue\\fR lines:")
        for name, _, lines in free:
            o += [f".SS [{esc(name)}]", ".nf"] + [esc(l) for l in lines] + [".fi"]
    o += [
        ".SH FILES",
        ".TP",
        ".I /etc/orderbridge/orderbridge.conf",
        "the configuration the systemd unit reads",
        ".TP",
        f".I {esc(examples)}/orderbridge.conf",
        "an example to start from",
        ".SH SEE ALSO",
        ".BR orderbridge (8)",
    ]
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the orderbridge binary")
    ap.add_argument("--version", required=True)
    ap.add_argument("--examples", required=True, help="where the example is installed")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    keys = subprocess.run([a.bin, "--keys"], capture_output=True, text=True, check=True).stdout
    try:
        page = roff(parse(keys), a.version, a.examples)
    except ValueError as e:
        sys.exit(f"keys2roff: `{a.bin} --keys`: {e}")
    with open(a.out, "w", encoding="ascii") as f:
        f.write(page)


if __name__ == "__main__":
    main()
