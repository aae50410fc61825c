"""Write CLINC150's in-scope rows as '<intent> <text>' text files that `bilaf embed` reads (labels = intents).

    python benchmarks/data/make_clinc150.py ../shared/data/text/clinc150/data_full.json --out /tmp/bilaf-text
    -> OUT/clinc150_train.txt (15,000 rows), OUT/clinc150_val.txt (3,000), OUT/clinc150_test.txt (4,500)

Out-of-scope rows (``oos_*``, label ``oos``) are left out: they are not one of the 150 classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_full", help="CLINC150 data_full.json")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    data = json.loads(Path(args.data_full).read_text(encoding="utf-8"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        lines = []
        for text, intent in data[split]:
            text = " ".join(str(text).split())
            if not text or " " in intent:
                raise ValueError(f"unexpected row in {split}: {text!r} / {intent!r}")
            lines.append(f"{intent} {text}")
        (out / f"clinc150_{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{split}: {len(lines)} rows, {len({l.split(' ', 1)[0] for l in lines})} intents")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
