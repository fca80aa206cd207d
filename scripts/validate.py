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


def main():
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
