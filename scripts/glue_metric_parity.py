"""Our offline GLUE metrics (tasks/glue/metrics.py) against evaluate's GLUE metric, on hand-made
edge cases and random predictions for every task. Needs the hub once (evaluate downloads its
metric script); offline it exits 2 with the reason instead of passing silently.

    python scripts/glue_metric_parity.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from anywhere

from tasks.glue.metrics import metric_parity, parity_cases  # noqa: E402


def main(argv=None) -> int:
    """Compare every parity case; 0 when all agree, 2 when evaluate's metric cannot load."""
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    for task, preds, refs in parity_cases():
        try:
            pairs = metric_parity(task, preds, refs)
        except (FileNotFoundError, ConnectionError, OSError) as err:
            print(f"error: evaluate's GLUE metric did not load (needs the hub once): {err}", file=sys.stderr)
            return 2
        print(f"{task:5s} " + "  ".join(f"{k}={a:.6f} (evaluate {b:.6f})" for k, (a, b) in pairs.items()))
    print("parity: all GLUE metrics agree with evaluate's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
