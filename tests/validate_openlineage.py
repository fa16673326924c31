#!/usr/bin/env python3
"""Validates OpenLineage JSON Lines against the vendored spec (tests/openlineage/).

usage: validate_openlineage.py EVENTS.jsonl
Each line must be a RunEvent valid against OpenLineage.json (2-0-2), and each standard facet
valid against its own schema in facets/. Exit 0: valid; 1: invalid (errors printed); 3: no
jsonschema.
"""
import json
import os
import sys

try:
    import jsonschema
    from referencing import Registry, Resource
except ImportError:
    sys.stderr.write("python3 cannot import jsonschema (scripts/deps.sh installs it)\n")
    sys.exit(3)

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openlineage")
schemas = [os.path.join(here, "OpenLineage.json")] + [
    os.path.join(here, "facets", f) for f in sorted(os.listdir(os.path.join(here, "facets")))
]
loaded = {}
for path in schemas:
    with open(path) as f:
        s = json.load(f)
    loaded[s["$id"]] = s
registry = Registry().with_resources(
    (uri, Resource.from_contents(s)) for uri, s in loaded.items()
)
spec = loaded["https://openlineage.io/spec/2-0-2/OpenLineage.json"]
Validator = jsonschema.Draft202012Validator


def check(schema, doc, where):
    v = Validator(schema, registry=registry, format_checker=Validator.FORMAT_CHECKER)
    return ["%s/%s: %s" % (where, "/".join(map(str, e.absolute_path)), e.message)
            for e in v.iter_errors(doc)]


def facet_errors(facets, where):
    errors = []
    for name, facet in (facets or {}).items():
        uri, _, pointer = facet["_schemaURL"].partition("#")
        if uri in loaded:
            schema = {"$ref": facet["_schemaURL"]}
            errors += check(schema, {k: v for k, v in facet.items()}, "%s/%s" % (where, name))
    return errors


errors = []
events = 0
with open(sys.argv[1]) as f:
    for n, line in enumerate(f, 1):
        event = json.loads(line)
        events += 1
        errors += check(spec, event, "line %d" % n)
        errors += facet_errors(event["run"].get("facets"), "line %d run" % n)
        errors += facet_errors(event["job"].get("facets"), "line %d job" % n)
        for d in event.get("inputs", []) + event.get("outputs", []):
            errors += facet_errors(d.get("facets"), "line %d dataset %s" % (n, d["name"]))
for e in errors:
    sys.stderr.write(e + "\n")
if events == 0:
    sys.stderr.write("no events\n")
sys.exit(1 if errors or events == 0 else 0)
