#!/usr/bin/env python3
"""Checks botwatch's output with its peers' own validators (the tests run this).

usage: validate.py xarf FILE.jsonl      each line must pass `xarf.parse` (PyPI xarf) without
                                       errors and give a typed report
       validate.py intelmq FILE.jsonl   each line must load as an IntelMQ Event with
                                       IntelMQ's own harmonisation, every key and value valid
                                       as written (not only after IntelMQ's sanitation)
       validate.py prometheus FILE      the text exposition parses with prometheus_client's
                                       own parser (the format Prometheus scrapes)
       validate.py openapi FILE.json    the document passes openapi-spec-validator
       validate.py stix FILE.json       the bundle passes stix2-validator (OASIS) with no error;
                                       warnings other than "not a UUIDv4" (botwatch's ids are
                                       name-based UUIDv5 on purpose) fail too
       validate.py misp-feed DIR        PyMISP loads manifest.json and every event; each
                                       object rebuilt against its MISP object template in
                                       strict mode
       validate.py taxii URL USER PASS  taxii2-client walks discovery, the API root and every
                                       readable collection, paging objects 10 at a time;
                                       prints the objects it got as one JSON line per object

Prints one line per invalid input line (`line N: …`) and a summary; exits 1 if any line is
invalid or the file is empty, 2 if the validator package is missing.
"""
import json
import sys


def xarf_check(lines):
    try:
        import xarf
    except ImportError as e:
        print(f"missing validator: {e}", file=sys.stderr)
        sys.exit(2)
    bad = []
    for n, line in lines:
        r = xarf.parse(line, strict=False)
        errors = [f"{e.field}: {e.message}" for e in r.errors]
        if not errors and r.report is None:
            errors.append("no typed report produced")
        if errors:
            bad.append(f"line {n}: " + "; ".join(errors))
    return bad, f"xarf {getattr(xarf, '__version__', '?')}"


def intelmq_check(lines):
    try:
        from importlib.resources import files

        import intelmq
        from intelmq.lib.message import Event, MessageFactory
    except ImportError as e:
        print(f"missing validator: {e}", file=sys.stderr)
        sys.exit(2)
    harm = json.loads((files("intelmq") / "etc/harmonization.conf").read_text())
    bad = []
    for n, line in lines:
        try:
            doc = json.loads(line)
            probe = Event(harmonization=harm)
            for key, value in doc.items():
                # IntelMQ drops these values silently: a key that carries one is lost.
                if value in (None, *Event._IGNORED_VALUES):
                    raise ValueError(f"key {key!r}: value {value!r} would be dropped")
                if not probe.is_valid(key, value, sanitize=False):
                    raise ValueError(f"key {key!r}: invalid value {value!r}")
            MessageFactory.unserialize(line, harmonization=harm, default_type="Event")
        except Exception as e:  # InvalidKey, InvalidValue, binascii.Error, JSON errors
            bad.append(f"line {n}: {type(e).__name__}: {e}")
    return bad, f"intelmq {intelmq.__version__}"


def whole_file(kind, path):
    """The one-document checks: prometheus and openapi."""
    try:
        if kind == "prometheus":
            from prometheus_client.parser import text_string_to_metric_families

            with open(path, encoding="utf-8") as f:
                families = list(text_string_to_metric_families(f.read()))
            samples = sum(len(f.samples) for f in families)
            print(f"prometheus_client: {len(families)} families, {samples} samples parsed")
            return 0 if families else 1
        import json

        from openapi_spec_validator import validate

        with open(path, encoding="utf-8") as f:
            validate(json.load(f))
        print("openapi-spec-validator: valid")
        return 0
    except ImportError as e:
        print(f"missing validator: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the validators' own errors
        print(f"invalid: {type(e).__name__}: {e}")
        return 1


def stix_check(path):
    from stix2validator import ValidationOptions, validate_file

    r = validate_file(path, ValidationOptions(version="2.1", silent=True))
    errors = [str(e) for o in r.object_results for e in o.errors]
    warnings = [str(w) for o in r.object_results for w in o.warnings if "UUIDv4" not in str(w)]
    for e in (errors + warnings)[:50]:
        print(e)
    with open(path, encoding="utf-8") as f:
        n = len(json.load(f).get("objects", []))
    print(f"stix2-validator: {n} objects, {len(errors)} errors, {len(warnings)} warnings")
    return 0 if r.is_valid and not errors and not warnings and n > 0 else 1


def misp_check(d):
    import os

    from pymisp import MISPEvent, MISPObject

    with open(os.path.join(d, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    objects = attributes = 0
    for uuid, summary in manifest.items():
        ev = MISPEvent(strict_validation=True)
        ev.load_file(os.path.join(d, uuid + ".json"))
        assert ev.uuid == uuid, f"{uuid}: event uuid {ev.uuid}"
        assert ev.info == summary["info"], f"{uuid}: manifest info differs"
        for o in ev.objects:
            rebuilt = MISPObject(o.name, strict=True)
            for a in o.attributes:
                rebuilt.add_attribute(a.object_relation, value=a.value, type=a.type)
                attributes += 1
            rebuilt.to_json(sort_keys=True)
            objects += 1
    with open(os.path.join(d, "hashes.csv"), encoding="utf-8") as f:
        hashes = sum(1 for line in f if line.strip())
    print(f"pymisp: {len(manifest)} events, {objects} objects, {attributes} attributes, {hashes} hashes")
    return 0 if manifest and objects and hashes == objects else 1


def taxii_walk(url, user, password):
    from taxii2client.v21 import Server, as_pages

    server = Server(url, user=user, password=password)
    got = 0
    print(json.dumps({"discovery": server.title, "api_roots": len(server.api_roots)}))
    for root in server.api_roots:
        for c in root.collections:
            if not c.can_read:
                continue
            pages = 0
            for env in as_pages(c.get_objects, per_request=10):
                pages += 1
                for o in env.get("objects", []):
                    got += 1
                    print(json.dumps({"collection": c.id, "object": o}))
            m = c.get_manifest()
            print(json.dumps({"collection": c.id, "pages": pages, "manifest": len(m.get("objects", []))}))
    print(json.dumps({"objects": got}))
    return 0 if got else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] in ("stix", "misp-feed"):
        try:
            sys.exit(stix_check(sys.argv[2]) if sys.argv[1] == "stix" else misp_check(sys.argv[2]))
        except ImportError as e:
            print(f"missing validator: {e}", file=sys.stderr)
            sys.exit(2)
    if len(sys.argv) == 5 and sys.argv[1] == "taxii":
        sys.exit(taxii_walk(*sys.argv[2:5]))
    if len(sys.argv) == 3 and sys.argv[1] in ("prometheus", "openapi"):
        sys.exit(whole_file(sys.argv[1], sys.argv[2]))
    if len(sys.argv) != 3 or sys.argv[1] not in ("xarf", "intelmq"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[2], encoding="utf-8") as f:
        lines = [(n, l) for n, l in enumerate(f, 1) if l.strip()]
    check = xarf_check if sys.argv[1] == "xarf" else intelmq_check
    bad, version = check(lines)
    for b in bad[:50]:
        print(b)
    print(f"{version}: {len(lines) - len(bad)} valid, {len(bad)} invalid of {len(lines)} lines")
    sys.exit(1 if bad or not lines else 0)


if __name__ == "__main__":
    main()
