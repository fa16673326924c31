#!/usr/bin/env python3
"""Validates a PROV-JSON document against tests/prov-json.schema.json.

usage: validate_prov_json.py SCHEMA DOCUMENT
Exit 0: valid. Exit 1: invalid (every error printed). Exit 3: jsonschema missing.
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    sys.stderr.write(
        "python3 cannot import jsonschema, which the PROV-JSON test needs: "
        "run `pip install jsonschema` (CI does this in .ci/run)\n"
    )
    sys.exit(3)

schema_path, doc_path = sys.argv[1], sys.argv[2]
with open(schema_path) as f:
    schema = json.load(f)
with open(doc_path) as f:
    doc = json.load(f)
jsonschema.Draft4Validator.check_schema(schema)
validator = jsonschema.Draft4Validator(
    schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
)
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    sys.stderr.write("%s: %s\n" % ("/".join(map(str, e.absolute_path)), e.message))
sys.exit(1 if errors else 0)
