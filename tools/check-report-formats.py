#!/usr/bin/env python3
"""Checks `configsync validate` reports against the schemas their consumers use.

Usage: tools/check-report-formats.py [--sarif FILE]... [--junit FILE]... [--schemas DIR]

A SARIF file is validated against the OASIS SARIF 2.1.0 JSON Schema (what GitHub code
scanning reads), a JUnit file against Jenkins' junit-10.xsd (the JUnit dialect CI systems
accept). Both schemas live in services/validation/tests/fixtures/formats/ (see its README for
their sources). Prints every violation as `FILE: where: what` and exits 1 when there is any,
2 when the check itself cannot run (missing file, schema or Python module), else 0.
Needs jsonschema (>= 4) and lxml: `python3 -m pip install 'jsonschema>=4' lxml`.
"""

import argparse
import json
import re
import sys
from pathlib import Path

DEFAULT_SCHEMAS = (
    Path(__file__).resolve().parent.parent
    / "services/validation/tests/fixtures/formats"
)

# RFC 3986 URI-reference characters: unreserved, reserved and percent-encodings. jsonschema
# checks the "uri" formats only when an optional package is installed; this stdlib check
# keeps the SARIF `uri-reference` rule enforced everywhere (a raw space or `<` in
# artifactLocation.uri is what consumers reject).
URI_REFERENCE = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def check_sarif(path, schemas, problems):
    import jsonschema

    schema = json.loads((schemas / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    try:
        log = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{path}: not a JSON file: {e}")
        return
    formats = jsonschema.FormatChecker()
    formats.checks("uri-reference")(lambda s: not isinstance(s, str) or bool(URI_REFERENCE.match(s)))
    formats.checks("uri")(
        lambda s: not isinstance(s, str) or bool(URI.match(s) and URI_REFERENCE.match(s))
    )
    validator = jsonschema.Draft4Validator(schema, format_checker=formats)
    for error in sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path)):
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        problems.append(f"{path}: {where}: {error.message}")


def check_junit(path, schemas, problems):
    from lxml import etree

    xsd = etree.XMLSchema(etree.parse(str(schemas / "junit-10.xsd")))
    try:
        doc = etree.parse(str(path))
    except (OSError, etree.XMLSyntaxError) as e:
        problems.append(f"{path}: not well-formed XML: {e}")
        return
    if not xsd.validate(doc):
        for error in xsd.error_log:
            problems.append(f"{path}: line {error.line}: {error.message}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sarif", action="append", default=[], help="SARIF file to check")
    parser.add_argument("--junit", action="append", default=[], help="JUnit XML file to check")
    parser.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS, help="schema folder")
    args = parser.parse_args()
    if not args.sarif and not args.junit:
        parser.error("give at least one --sarif or --junit file")
    try:
        import jsonschema  # noqa: F401
        from lxml import etree  # noqa: F401
    except ImportError as e:
        print(f"check-report-formats: {e}; run: python3 -m pip install 'jsonschema>=4' lxml",
              file=sys.stderr)
        return 2
    for name in ("sarif-schema-2.1.0.json", "junit-10.xsd"):
        if not (args.schemas / name).is_file():
            print(f"check-report-formats: schema {args.schemas / name} not found", file=sys.stderr)
            return 2

    problems = []
    for path in args.sarif:
        check_sarif(path, args.schemas, problems)
    for path in args.junit:
        check_junit(path, args.schemas, problems)
    for problem in problems:
        print(problem)
    checked = len(args.sarif) + len(args.junit)
    print(f"check-report-formats: {checked} file(s), {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
