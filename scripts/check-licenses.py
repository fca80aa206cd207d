#!/usr/bin/env python3
"""Licence check for what ends up in botwatch's binaries (the `cargo deny check licenses` of this
repository; cargo-deny itself is not installable here without compiling it).

1. Dependencies: `cargo metadata --format-version 1 --locked`, then every package reachable from
   the workspace members through *normal* dependency edges (dev- and build-dependencies are not
   linked into the binaries; all target platforms are included unless --target is given). Each
   package's SPDX `license` expression must be satisfiable from ALLOWED (OR: one side suffices,
   AND: all, WITH: licence and exception both allowed; the legacy `/` separator means OR).
   Packages with only a `license_file` must be listed in LICENSE_FILE_EXCEPTIONS with a reason.
2. The workspace's own crates declare the project licence ([workspace.package] license), and
   LICENSE at the root holds that licence's text.
3. Data compiled into the binaries: every `include_str!` / `include_bytes!` under crates/*/src
   (test modules left out) plus the demo samples crates/botwatch/build.rs embeds (the files
   crates/botwatch/demo-samples.txt lists; a build.rs that embeds otherwise is an error, so
   the two cannot drift apart silently). Every embedded file must match an entry of DATA, whose
   licence must be allowed for data, whose sidecar must exist and state it, and whose
   attribution (CC BY) must be printed by the code named in the entry.
4. Licence files that PROVENANCE/README sidecars point to (LICENSE.*.txt) exist, so fixtures
   keep their licence texts.

Exit status: 0 all allowed, 1 violations, 2 the check itself could not run.
Usage: scripts/check-licenses.py [--target TRIPLE] [--list]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# Policy: licences allowed for code linked into an Apache-2.0 binary.
# Every entry is permissive (no copyleft, no field-of-use restriction). Those marked "in use"
# are needed by the current dependency graph (the packages in the comment); the others are
# equally permissive and common in the Rust ecosystem, allowed so that a routine update does not
# trip the check. Deliberately NOT allowed: GPL/LGPL/AGPL (copyleft; LGPL's relinking duty does
# not fit static Rust linking), MPL-2.0 (file-level copyleft: allow only after review of the
# crate), Unlicense (only offered as an alternative to MIT today), OpenSSL/SSLeay (not in the
# graph; ring 0.17 is Apache-2.0 AND ISC), CC-BY-SA / CC-BY-NC*.
ALLOWED = {
    "Apache-2.0": "in use: the project's licence and most crates",
    "MIT": "in use: most crates",
    "BSD-3-Clause": "in use: subtle, sha1_smol, matchit (MIT AND BSD-3-Clause)",
    "ISC": "in use: rustls-webpki, untrusted, ring (Apache-2.0 AND ISC)",
    "Unicode-3.0": "in use: icu_* / zerovec / yoke / tinystr (via idna, url), unicode-ident",
    "Zlib": "in use: foldhash, zlib-rs",
    "BSL-1.0": "in use: xxhash-rust",
    "0BSD": "in use: quoted_printable",
    "CDLA-Permissive-2.0": "in use: webpki-root-certs (Mozilla's root certificate data)",
    "BSD-2-Clause": "permissive, not needed today",
    "Unicode-DFS-2016": "permissive (older unicode-ident releases), not needed today",
    "CC0-1.0": "public-domain dedication, not needed today",
    "MIT-0": "permissive, not needed today",
}
# `WITH` exceptions that only add permissions.
ALLOWED_EXCEPTIONS = {"LLVM-exception"}

# Packages without an SPDX `license` (only `license_file`): name -> reason it is acceptable.
# Empty today: every package in the graph declares an SPDX expression.
LICENSE_FILE_EXCEPTIONS: dict[str, str] = {}

# Data licences that are not code licences but allow shipping the data inside the binary:
# LicenseRef -> why it is accepted. Each is a publisher's terms, recorded in the sidecar.
DATA_LICENSE_REFS = {
    "LicenseRef-abusech-terms": "abuse.ch publishes Feodo Tracker / URLhaus data for free use, "
    "commercial or not (terms linked from each file's header); confirm before a release",
    "LicenseRef-Spamhaus-DROP-terms": "Spamhaus DROP Terms of Use: the lists are provided free of "
    "charge subject to the terms (https://www.spamhaus.org/drop/terms/); confirm before a release",
    "LicenseRef-Shadowserver-report-schema": "Shadowserver's published field lists for its reports "
    "(report_schema repository, no LICENSE file): facts used to parse Shadowserver's own reports",
    "LicenseRef-SCOWL": "SCOWL word list: permission to use, copy, modify, distribute and sell "
    "provided the notice appears in copies and supporting documentation",
}
# Unlicense is kept out of ALLOWED for code (see above) but is a public-domain dedication with a
# permissive fallback: fine for a list of facts (dyndns_zones.txt).
DATA_ALLOWED = set(ALLOWED) | set(DATA_LICENSE_REFS) | {"CC-BY-4.0", "Unlicense"}

# The project's own files (written or generated for botwatch): under the project licence.
PROJECT = "Apache-2.0"


@dataclass
class Data:
    """Embedded files matching `pattern` (glob relative to the repository root)."""

    pattern: str
    licence: str  # SPDX expression (LicenseRef-… for data terms)
    sidecar: str | None = None  # file stating the licence (None: the project's own source)
    evidence: list[str] = field(default_factory=list)  # strings the sidecar must contain
    licence_text: str | None = None  # licence text that must exist beside the fixtures
    attribution: tuple[str, str] | None = None  # (file, string): the credit the binary prints


FX = "crates/feeds/tests/data"
INTELMQ = "AGPL-3.0-or-later"
INTELMQ_TEXT = f"{FX}/LICENSE.intelmq.AGPL-3.0.txt"

# First match wins: specific entries before general ones.
DATA = [
    # --- the project's own sources, compiled in ---
    Data("crates/server/templates/*.html", PROJECT),
    Data("crates/server/openapi.json", PROJECT),
    Data("crates/notify/templates/*/*.txt", PROJECT),
    Data("crates/notify/data/remediation.toml", PROJECT),
    Data("crates/store/migrations/sqlite/*.sql", PROJECT),
    Data("crates/store/migrations/postgres/*.sql", PROJECT),
    Data("crates/server/assets/app.js", PROJECT, "crates/server/assets/PROVENANCE.md",
         ["`app.js`, `style.css`: botwatch's own (Apache-2.0)"]),
    Data("crates/server/assets/style.css", PROJECT, "crates/server/assets/PROVENANCE.md",
         ["`app.js`, `style.css`: botwatch's own (Apache-2.0)"]),
    Data("crates/server/assets/uPlot.*", "MIT", "crates/server/assets/PROVENANCE.md",
         ["uPlot 1.6.32", "MIT licence"], licence_text="crates/server/assets/uPlot.LICENSE"),
    Data("crates/feeds/schema/shadowserver/legacy.json", PROJECT,
         "crates/feeds/schema/shadowserver/PROVENANCE.txt", ["legacy.json:", "written for botwatch"]),
    Data("crates/feeds/schema/shadowserver/*.json", "LicenseRef-Shadowserver-report-schema",
         "crates/feeds/schema/shadowserver/PROVENANCE.txt",
         ["intelmq.json, reports.json", "The-Shadowserver-Foundation/report_schema"]),
    Data("crates/telemetry/data/dga_model.json", PROJECT, "crates/telemetry/data/DGA_PROVENANCE.md",
         ["`dga_model.json`: trained by", "only derived statistics are shipped"]),
    # Written for botwatch from the captures' published descriptions (each entry cites its source).
    Data("crates/botwatch/src/eval_truth.toml", PROJECT, None, []),
    Data("crates/telemetry/data/dga_hashed.bin", PROJECT, "crates/telemetry/data/DGA_PROVENANCE.md",
         ["`dga_hashed.bin`: the hashed weights"]),
    Data("crates/telemetry/data/dyndns_zones.txt", "Unlicense", "crates/telemetry/data/DGA_PROVENANCE.md",
         ["`dyndns_zones.txt`", "alexandrosmagos/dyn-dns-list", "Unlicense"],
         licence_text="crates/telemetry/data/dyndns_zones.LICENSE.txt"),
    Data("crates/telemetry/data/dga_words.txt", "LicenseRef-SCOWL", "crates/telemetry/data/DGA_PROVENANCE.md",
         ["`dga_words.txt`", "SCOWL"], licence_text="crates/telemetry/data/dga_words.COPYRIGHT.txt"),
    Data("crates/enrich/data/asn-ipv[46].csv.gz", "CC-BY-4.0", "crates/enrich/data/CREDITS.md",
         ["asn-ipv4.csv.gz, asn-ipv6.csv.gz", "CC BY 4.0"], licence_text="crates/enrich/data/asn.DBIP-LICENSE",
         attribution=("crates/enrich/src/lib.rs", "ip-location-db (CC BY 4.0), from RouteViews, NRO and DB-IP")),
    Data("crates/enrich/data/asn-country-ipv[46].csv.gz", "CC-BY-4.0", "crates/enrich/data/CREDITS.md",
         ["asn-country-ipv4.csv.gz, asn-country-ipv6.csv.gz", "attribution to nro.net"],
         licence_text="crates/enrich/data/asn-country.NRO_LICENSE",
         attribution=("crates/enrich/src/lib.rs", "from RouteViews, NRO and DB-IP")),
    Data("crates/telemetry/tests/data/dns/generated_unbound/unbound.dnstap.fstrm", PROJECT,
         "crates/telemetry/tests/data/dns/generated_unbound/PROVENANCE.md",
         ["Generated for this project", "carry the project's licence (Apache-2.0)"]),
    # --- demo samples (crates/botwatch/build.rs) ---
    Data(f"{FX}/*/*_handmade*", PROJECT, None, []),  # sidecar: the folder's PROVENANCE.txt (below)
    Data(f"{FX}/blocklistde/blocklistde_ssh.txt", PROJECT, f"{FX}/blocklistde/PROVENANCE.txt",
         ["blocklistde_ssh.txt: written for botwatch (Apache-2.0)"]),
    Data(f"{FX}/abusech/feodo_ipblocklist_2024-04-04.csv", "LicenseRef-abusech-terms",
         f"{FX}/abusech/PROVENANCE.txt", ["feodo_ipblocklist_2024-04-04.csv", "unmodified", "Feodo Tracker download"]),
    Data(f"{FX}/abusech/urlhaus_feed_*_2019-05-22.csv", "LicenseRef-abusech-terms",
         f"{FX}/abusech/PROVENANCE.txt", ["urlhaus_feed_asn7506_2019-05-22.csv, urlhaus_feed_tld_jp_2019-05-22.csv",
                                          "urlhaus.abuse.ch"]),
    # Only provenance: a repository whose LICENSE is GPL-3.0 (its setup.cfg says MIT). Treated
    # as GPL until someone establishes otherwise.
    Data(f"{FX}/abusech/threatfox_api_recent_2022-01.json", "GPL-3.0-only", f"{FX}/abusech/PROVENANCE.txt",
         ["threatfox_api_recent_2022-01.json", "GPL-3.0"]),
    Data(f"{FX}/abusech/feodo_ipblocklist_202[12].*", INTELMQ, f"{FX}/abusech/PROVENANCE.txt",
         ["certtools/intelmq (AGPL-3.0-or-later"], INTELMQ_TEXT),
    Data(f"{FX}/abusech/urlhaus_tld_ch_2019.csv", INTELMQ, f"{FX}/abusech/PROVENANCE.txt",
         ["urlhaus_tld_ch_2019.csv           github.com/certtools/intelmq (AGPL-3.0-or-later"], INTELMQ_TEXT),
    Data(f"{FX}/spamhaus/intelmq_*", INTELMQ, f"{FX}/spamhaus/PROVENANCE.txt",
         ["certtools/intelmq (AGPL-3.0-or-later"], INTELMQ_TEXT),
    Data(f"{FX}/spamhaus/*", "LicenseRef-Spamhaus-DROP-terms", f"{FX}/spamhaus/PROVENANCE.txt",
         ["Spamhaus DROP Lists Terms of Use"]),
    Data(f"{FX}/misp/intelmq_*", INTELMQ, f"{FX}/misp/PROVENANCE.txt",
         ["certtools/intelmq (AGPL-3.0-or-later"], INTELMQ_TEXT),
    Data(f"{FX}/misp/pymisp_*", "BSD-2-Clause", f"{FX}/misp/PROVENANCE.txt",
         ["PyMISP licence (BSD-2-Clause-style)"], f"{FX}/misp/LICENSE.PyMISP.txt"),
    Data(f"{FX}/stix/pymisp_*", "BSD-2-Clause", f"{FX}/stix/PROVENANCE.txt",
         ["BSD-2-Clause-style: ../misp/LICENSE.PyMISP.txt"], f"{FX}/misp/LICENSE.PyMISP.txt"),
    Data(f"{FX}/stix/oasis_*", "BSD-3-Clause", f"{FX}/stix/PROVENANCE.txt",
         ["BSD-3-Clause, (c) OASIS Open"], f"{FX}/stix/LICENSE.oasis-cti-stix2-json-schemas.txt"),
    # IntelMQ's parser test data. DShield's list is also CC BY-NC-SA 2.5 (its header); Bambenek's
    # feeds need a licence for commercial use.
    Data(f"{FX}/dshield/*", f"{INTELMQ} AND CC-BY-NC-SA-2.5", f"{FX}/dshield/PROVENANCE.txt",
         ["certtools/intelmq (AGPL-3.0-or-later"], INTELMQ_TEXT),
    Data(f"{FX}/bambenek/*", f"{INTELMQ} AND LicenseRef-Bambenek-noncommercial", f"{FX}/bambenek/PROVENANCE.txt",
         ["certtools/intelmq (AGPL-3.0-or-later"], INTELMQ_TEXT),
    *[
        Data(f"{FX}/{d}/*", INTELMQ, f"{FX}/{d}/PROVENANCE.txt", [ev], INTELMQ_TEXT)
        for d, ev in [
            ("blocklistde", "certtools/intelmq (AGPL-3.0-or-later"),
            ("cymru", "certtools/intelmq (AGPL-3.0-or-later"),
            ("dataplane", "certtools/intelmq (AGPL-3.0-or-later"),
            ("microsoft", "certtools/intelmq (AGPL-3.0-or-later"),
            ("generic", "certtools/intelmq (AGPL-3.0-or-later"),
            ("shadowserver", "Licence: AGPL-3.0-or-later"),
        ]
    ],
]
# Handmade demo samples: the folder's PROVENANCE.txt must say they were written for botwatch.
HANDMADE_EVIDENCE = "written for botwatch (Apache-2.0)"


# --------------------------------------------------------------------------------------------
# SPDX expressions
class SpdxError(ValueError):
    pass


def _tokens(expr: str) -> list[str]:
    toks = re.findall(r"\(|\)|/|[A-Za-z0-9.+:\-]+", expr)
    if "".join(toks) != re.sub(r"\s+", "", expr):
        raise SpdxError(f"unexpected characters in {expr!r}")
    out = []
    for t in toks:
        u = t.upper()
        out.append(u if u in ("AND", "OR", "WITH") else ("OR" if t == "/" else t))
    return out


def parse_spdx(expr: str):
    """-> nested tuples: ('or', a, b) | ('and', a, b) | ('lic', id, exception|None)."""
    toks = _tokens(expr)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        if pos >= len(toks):
            raise SpdxError(f"unexpected end of {expr!r}")
        pos += 1
        return toks[pos - 1]

    def primary():
        t = peek()
        if t is None:
            raise SpdxError(f"unexpected end of {expr!r}")
        if t == "(":
            take()
            e = or_expr()
            if take() != ")":
                raise SpdxError(f"missing ')' in {expr!r}")
            return e
        if t in ("AND", "OR", "WITH", ")"):
            raise SpdxError(f"unexpected {t!r} in {expr!r}")
        lic = take()
        exc = None
        if peek() == "WITH":
            take()
            exc = take() if peek() not in (None, "(", ")", "AND", "OR", "WITH") else None
            if exc is None:
                raise SpdxError(f"WITH without an exception in {expr!r}")
        return ("lic", lic, exc)

    def and_expr():
        e = primary()
        while peek() == "AND":
            take()
            e = ("and", e, primary())
        return e

    def or_expr():
        e = and_expr()
        while peek() == "OR":
            take()
            e = ("or", e, and_expr())
        return e

    e = or_expr()
    if pos != len(toks):
        raise SpdxError(f"trailing {toks[pos]!r} in {expr!r}")
    return e


def satisfied(node, allowed: set[str]) -> bool:
    kind = node[0]
    if kind == "or":
        return satisfied(node[1], allowed) or satisfied(node[2], allowed)
    if kind == "and":
        return satisfied(node[1], allowed) and satisfied(node[2], allowed)
    lic, exc = node[1], node[2]
    base = lic[:-1] if lic.endswith("+") else lic  # "X+" = X or later: X itself is allowed
    # SPDX identifiers compare case-insensitively.
    ok_lic = base.lower() in {a.lower() for a in allowed}
    return ok_lic and (exc is None or exc.lower() in {e.lower() for e in ALLOWED_EXCEPTIONS})


def chosen_ids(node, allowed: set[str]) -> set[str]:
    """The licences a satisfiable expression is taken under (for OR, the first allowed side)."""
    if node[0] == "lic":
        return {node[1] + (f" WITH {node[2]}" if node[2] else "")}
    if node[0] == "or":
        side = node[1] if satisfied(node[1], allowed) else node[2]
        return chosen_ids(side, allowed)
    return chosen_ids(node[1], allowed) | chosen_ids(node[2], allowed)


# --------------------------------------------------------------------------------------------
# Dependencies
def cargo_metadata(target: str | None) -> dict:
    cmd = ["cargo", "metadata", "--format-version", "1", "--locked"]
    if target:
        cmd += ["--filter-platform", target]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"check-licenses: `{' '.join(cmd)}` failed (exit {r.returncode})")
    return json.loads(r.stdout)


def linked_packages(meta: dict) -> list[dict]:
    """Packages reachable from the workspace members through normal (kind null) edges."""
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    seen, stack = set(), list(meta["workspace_members"])
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for d in nodes[pid]["deps"]:
            if any(k.get("kind") is None for k in d.get("dep_kinds", [])):
                stack.append(d["pkg"])
    return sorted((pkgs[i] for i in seen), key=lambda p: (p["name"], p["version"]))


def check_dependencies(meta: dict, project_licence: str, errors: list[str], listing: bool) -> tuple[int, dict]:
    members = set(meta["workspace_members"])
    used: dict[str, list[str]] = {}
    pkgs = linked_packages(meta)
    for p in pkgs:
        who = f"{p['name']} {p['version']}"
        lic = p.get("license")
        if p["id"] in members and lic != project_licence:
            errors.append(f"workspace crate {who}: license {lic!r}, the project's is {project_licence!r} "
                          "(use `license.workspace = true`)")
            continue
        if not lic:
            if p.get("license_file") and p["name"] in LICENSE_FILE_EXCEPTIONS:
                used.setdefault(f"license_file ({p['name']})", []).append(who)
                continue
            what = f"only license_file {p['license_file']!r}" if p.get("license_file") else "no licence at all"
            errors.append(f"{who}: {what}; review it and add it to LICENSE_FILE_EXCEPTIONS with the reason")
            continue
        try:
            tree = parse_spdx(lic)
        except SpdxError as e:
            errors.append(f"{who}: cannot parse license {lic!r}: {e}")
            continue
        if not satisfied(tree, set(ALLOWED)):
            errors.append(f"{who}: license {lic!r} is not satisfiable from the allow-list")
            continue
        for i in chosen_ids(tree, set(ALLOWED)):
            used.setdefault(i, []).append(who)
        if listing:
            print(f"  {who:<45} {lic}")
    return len(pkgs), used


# --------------------------------------------------------------------------------------------
# Embedded data
INCLUDE_RE = re.compile(r"\binclude_(?:str|bytes)!\s*\(\s*(\"(?:[^\"\\]|\\.)*\"|concat!\s*\((?:[^()]|\([^()]*\))*\))\s*\)")
OTHER_EMBED_RE = re.compile(r"\b(?:rust_embed|RustEmbed|include_dir!|include_flate|embed_file)\b")
TEST_MOD_RE = re.compile(r"^\s*#\[cfg\(test\)\]\s*\n\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", re.M)


def include_pattern(arg: str) -> str:
    """`"a/b"` -> a/b; `concat!("../t/", $lang, "/x.txt")` -> ../t/*/x.txt."""
    if arg.startswith('"'):
        return json.loads(arg)
    inner = arg[arg.index("(") + 1 : -1]
    parts = re.findall(r"\"(?:[^\"\\]|\\.)*\"|[^,]+", inner)
    return "".join(json.loads(p.strip()) if p.strip().startswith('"') else "*" for p in parts if p.strip())


def source_includes(errors: list[str]) -> dict[Path, str]:
    """Embedded file -> where it is included. Test code (tests/, benches/, examples/, tests.rs,
    and a trailing `#[cfg(test)] mod … {`) is left out: it is not in the binaries."""
    found: dict[Path, str] = {}
    for rs in sorted(ROOT.glob("crates/*/src/**/*.rs")):
        if rs.name == "tests.rs":
            continue
        text = rs.read_text(encoding="utf-8")
        m = TEST_MOD_RE.search(text)
        code = text[: m.start()] if m else text
        rel = rs.relative_to(ROOT)
        if OTHER_EMBED_RE.search(code):
            errors.append(f"{rel}: embeds files by a mechanism this script does not read; extend it")
        if re.search(r"\binclude!\s*\(\s*concat!\s*\(\s*env!\s*\(\s*\"OUT_DIR\"", code):
            if rel.parts[1] != "botwatch":
                errors.append(f"{rel}: includes generated code from OUT_DIR; teach this script its build.rs")
        for mm in INCLUDE_RE.finditer(code):
            line = code.count("\n", 0, mm.start()) + 1
            pat = include_pattern(mm.group(1))
            base = rs.parent
            matches = sorted(base.glob(pat)) if "*" in pat else [base / pat]
            matches = [p.resolve() for p in matches if p.exists()]
            if not matches:
                errors.append(f"{rel}:{line}: include of {pat!r} matches no file")
            for p in matches:
                found.setdefault(p, f"{rel}:{line}")
        for mm in re.finditer(r"\binclude_(?:str|bytes)!", code):
            if not INCLUDE_RE.match(code, mm.start()):
                line = code.count("\n", 0, mm.start()) + 1
                errors.append(f"{rel}:{line}: an include this script cannot read; extend it")
    return found


def build_rs_samples(errors: list[str]) -> dict[Path, str]:
    """The demo samples crates/botwatch/build.rs embeds: the files demo-samples.txt lists."""
    build = ROOT / "crates/botwatch/build.rs"
    rel = build.relative_to(ROOT)
    text = build.read_text(encoding="utf-8")
    if "demo-samples.txt" not in text or "include_bytes!" not in text:
        errors.append(f"{rel}: no longer embeds the files demo-samples.txt lists; update build_rs_samples()")
        return {}
    root = (ROOT / "crates/feeds/tests/data").resolve()
    out: dict[Path, str] = {}
    for line in (ROOT / "crates/botwatch/demo-samples.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = (root / line).resolve()
        if not p.is_file():
            errors.append(f"crates/botwatch/demo-samples.txt: {line} does not exist")
            continue
        out[p] = f"{rel} (demo sample)"
    return out


def check_data(embedded: dict[Path, str], errors: list[str], listing: bool) -> dict[str, int]:
    per_licence: dict[str, int] = {}
    for path, where in sorted(embedded.items()):
        rel = path.relative_to(ROOT).as_posix()
        entry = next((d for d in DATA if fnmatch.fnmatchcase(rel, d.pattern)), None)
        if entry is None:
            errors.append(f"{rel} (embedded by {where}): no entry in DATA; record its licence and sidecar")
            continue
        problems = []
        sidecar, evidence = entry.sidecar, entry.evidence
        if entry.pattern.endswith("_handmade*"):
            sidecar, evidence = str(Path(rel).parent / "PROVENANCE.txt"), [HANDMADE_EVIDENCE]
        if sidecar:
            sp = ROOT / sidecar
            if not sp.exists():
                problems.append(f"licence sidecar {sidecar} is missing")
            else:
                st = sp.read_text(encoding="utf-8", errors="replace")
                problems += [f"{sidecar} does not say {ev!r}" for ev in evidence if ev not in st]
        if entry.licence_text and not (ROOT / entry.licence_text).exists():
            problems.append(f"licence text {entry.licence_text} is missing")
        if entry.attribution:
            f, s = entry.attribution
            if s not in (ROOT / f).read_text(encoding="utf-8"):
                problems.append(f"attribution {s!r} no longer in {f}")
        try:
            ok = satisfied(parse_spdx(entry.licence), DATA_ALLOWED)
        except SpdxError as e:
            ok, problems = False, problems + [str(e)]
        if not ok:
            problems.insert(0, f"licence {entry.licence} is not allowed in the binary")
        for pr in problems:
            errors.append(f"{rel} (embedded by {where}): {pr}")
        per_licence[entry.licence] = per_licence.get(entry.licence, 0) + 1
        if listing:
            print(f"  {rel:<88} {entry.licence}{'' if ok else '   <-- NOT ALLOWED'}")
    return per_licence


def check_sidecar_references(errors: list[str]) -> None:
    """LICENSE.*.txt files named in PROVENANCE/README sidecars exist."""
    ref = re.compile(r"((?:\.\./)*(?:[\w-]+/)?LICENSE\.[\w.\-]*?\.txt)")
    for side in sorted(ROOT.glob("crates/**/PROVENANCE*")) + sorted(ROOT.glob("crates/**/data/**/README*")):
        if "target" in side.parts:
            continue
        for r in set(ref.findall(side.read_text(encoding="utf-8", errors="replace"))):
            if not (side.parent / r).exists():
                errors.append(f"{side.relative_to(ROOT)} points to {r}, which is missing")


# --------------------------------------------------------------------------------------------
LICENCE_TEXT_START = {"Apache-2.0": ("Apache License", "Version 2.0, January 2004")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", help="only dependencies for this target triple (cargo metadata --filter-platform)")
    ap.add_argument("--list", action="store_true", help="print every package and embedded file with its licence")
    args = ap.parse_args()

    errors: list[str] = []
    project = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))["workspace"]["package"]["license"]
    lic_file = ROOT / "LICENSE"
    if not lic_file.exists():
        errors.append(f"LICENSE is missing (the project licence is {project})")
    elif project in LICENCE_TEXT_START:
        head = lic_file.read_text(encoding="utf-8")[:400]
        if not all(s in head for s in LICENCE_TEXT_START[project]):
            errors.append(f"LICENSE does not hold the {project} text")

    meta = cargo_metadata(args.target)
    if args.list:
        print("dependencies linked into the binaries:")
    n_pkgs, used = check_dependencies(meta, project, errors, args.list)

    embedded = source_includes(errors)
    for p, w in build_rs_samples(errors).items():
        embedded.setdefault(p, w)
    if args.list:
        print("data embedded in the binaries:")
    per_licence = check_data(embedded, errors, args.list)
    check_sidecar_references(errors)

    print(f"project licence: {project} (LICENSE {'present' if lic_file.exists() else 'MISSING'})")
    print("dependency licences (as chosen): " + ", ".join(f"{k} ({len(v)})" for k, v in sorted(used.items(), key=lambda kv: -len(kv[1]))))
    print("embedded data: " + ", ".join(f"{k} ({v})" for k, v in sorted(per_licence.items(), key=lambda kv: -kv[1])))
    dep_errors = [e for e in errors if "(embedded by" not in e]
    data_errors = [e for e in errors if "(embedded by" in e]
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        print(
            f"licences: {n_pkgs} packages checked, {len(embedded)} embedded files checked: "
            f"{len(dep_errors)} dependency/project and {len(data_errors)} embedded-data violation(s)",
            file=sys.stderr,
        )
        return 1
    print(f"licences: {n_pkgs} packages checked, all allowed; {len(embedded)} embedded files checked, all allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
