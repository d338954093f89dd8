"""Local image layouts (all relative to one dataset root; a split is the first that exists):

- `<root>/<split>.txt`: list file, one `relative/path label` per line (NOAH's VTAB-1k files
  train800.txt, val200.txt, train800val200.txt, test.txt; DomainNet's official lists);
- `<root>/<split>/<label>/*.{png,jpg,...}`: image folder (label = the folder name: an integer
  class index, or a class name looked up in the task's class list);
- `<root>/<domain>_<split>.txt`: one list per domain (DomainNet: clipart_train.txt, ...); the
  domain is recorded for per-domain metrics.

`write_image_folder` writes the folder layout (scripts/prepare_data.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tasks.vision.sources import Concat, FileSource, ImageSource

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _label_index(name: str, classes: Sequence[str] | None, where: Path) -> int:
    if classes is not None and name in classes:
        return list(classes).index(name)
    if name.lstrip("-").isdigit():
        return int(name)
    raise ValueError(f"{where}: label {name!r} is neither a class index nor one of the task's class names")


def read_list_file(path: Path, root: Path, classes=None, domain: str | None = None) -> FileSource:
    paths, labels = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        rel, _, label = line.strip().rpartition(" ")  # paths may hold spaces; the label is last
        if not rel:
            raise ValueError(f"{path}:{n}: expected 'relative/path label', got {line!r}")
        paths.append(root / rel)
        labels.append(_label_index(label, classes, path))
    return FileSource(paths, labels, [domain] * len(paths) if domain else None)


def read_image_folder(folder: Path, classes=None) -> FileSource:
    paths, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = _label_index(sub.name, classes, sub)
        files = sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [label] * len(files)
    return FileSource(paths, labels)


def find_split(root: Path, split: str) -> str | None:
    """Which layout holds `split` under `root` ('list', 'folder', 'domains'), or None."""
    if (root / f"{split}.txt").is_file():
        return "list"
    if (root / split).is_dir():
        return "folder"
    if any(root.glob(f"*_{split}.txt")):
        return "domains"
    return None


def read_split(root: Path, split: str, classes=None) -> ImageSource:
    layout = find_split(root, split)
    if layout == "list":
        return read_list_file(root / f"{split}.txt", root, classes)
    if layout == "folder":
        return read_image_folder(root / split, classes)
    if layout == "domains":
        lists = sorted(root.glob(f"*_{split}.txt"))
        return Concat([read_list_file(p, root, classes, domain=p.name[: -len(f"_{split}.txt")]) for p in lists])
    raise FileNotFoundError(f"no {split}.txt, {split}/ or *_{split}.txt under {root}")


def write_image_folder(root: Path, split: str, images, labels) -> int:
    """Save (PIL image, int label) pairs as <root>/<split>/<label>/<i>.png (prepare_data)."""
    n = 0
    for n, (img, label) in enumerate(zip(images, labels), start=1):
        path = root / split / str(int(label)) / f"{n - 1:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
    return n
