#!/usr/bin/env python3
"""Reads a PROV-JSON document with the W3C PROV library (`prov`, pinned by scripts/deps.sh)
and checks that it keeps every record and says nothing.

usage: read_prov.py DOCUMENT
Prints the number of records read; exit 1 when the library warned or dropped a record.
"""
import io
import json
import logging
import sys
import warnings

import prov
from prov.model import ProvDocument

log = io.StringIO()
logging.basicConfig(stream=log, level=logging.WARNING)
with open(sys.argv[1]) as f:
    text = f.read()
raw = json.loads(text)
sections = ["entity", "activity", "agent", "used", "wasGeneratedBy", "wasDerivedFrom",
            "wasAssociatedWith"]
expected = sum(len(raw.get(s, {})) for s in sections)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    doc = ProvDocument.deserialize(content=text, format="json")
records = len(doc.get_records())
problems = log.getvalue() + "".join(str(w.message) + "\n" for w in caught)
print("prov %s: %d records read, %d in the document" % (prov.__version__, records, expected))
if problems or records != expected:
    sys.stderr.write(problems)
    sys.exit(1)
