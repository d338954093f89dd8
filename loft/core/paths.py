"""The repository root, for code that reads committed files (conf/, results/paper/)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
