"""Format the JSON rows of seqstream bench: scenario, round, events/s, worker cores, broker cores."""

import json
import sys

for line in sys.stdin:
    text = line.strip()
    if text.startswith("{"):
        d = json.loads(text)
        print(d["scenario"], d.get("round"), int(d["events_per_s"]), d.get("cpu"), d.get("broker_cpu"))
    else:
        print(text[:130])
