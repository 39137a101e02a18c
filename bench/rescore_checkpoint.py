"""Store another named scoring config in a checkpoint, keeping its weights and metadata.

The bundled sensor checkpoint's weights were trained with the command in docs/accuracy.md; its
scoring config was switched to the calibrated one (issue 18) with::

    python bench/rescore_checkpoint.py models/checkpoints/sensor_gru.pt --scoring calibrated \
        -o models/checkpoints/sensor_gru.pt
"""

from __future__ import annotations

import argparse

from models.checkpoint import load_checkpoint, save_checkpoint
from models.scoring_config import SCORINGS, named_scoring


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--scoring", choices=sorted(SCORINGS), required=True)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    ck = load_checkpoint(args.checkpoint)
    meta = dict(ck.meta)
    meta["scoring_name"] = args.scoring
    save_checkpoint(args.output, ck.model, named_scoring(args.scoring), meta)
    print(f"wrote {args.output}: {ck.model_id} weights with the {args.scoring} scoring")


if __name__ == "__main__":
    main()
