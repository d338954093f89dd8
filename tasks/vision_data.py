"""Image sources for tasks/vision.py: one interface over the Debian Fashion-MNIST files, image
folders, list files and hub datasets, so the task code never cares where pixels come from.

A source is a sequence of (image, label) with optional per-example domains:
`len(source)`, `source.image(i) -> PIL.Image`, `source.labels` (int array), `source.domains`
(list of str or None). Images are decoded lazily (a batch at a time), so a 400k-image hub
dataset or folder costs only its index in memory.

Local layouts (all relative to one dataset root; a split is the first that exists):
- `<root>/<split>.txt`: list file, one `relative/path label` per line (NOAH's VTAB-1k files
  train800.txt, val200.txt, train800val200.txt, test.txt; DomainNet's official lists);
- `<root>/<split>/<label>/*.{png,jpg,...}`: image folder (label = the folder name: an integer
  class index, or a class name looked up in the task's class list);
- `<root>/<domain>_<split>.txt`: one list per domain (DomainNet: clipart_train.txt, ...); the
  domain is recorded for per-domain metrics.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from tasks.data_files import damaged

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageSource:
    labels: np.ndarray
    domains: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int):
        raise NotImplementedError

    def images(self, idx: Sequence[int]) -> list:
        return [self.image(int(i)) for i in idx]


class ArraySource(ImageSource):
    """uint8 pixels (N, H, W) or (N, H, W, C) in memory (Fashion-MNIST: 47 MB for 60k)."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray):
        if len(pixels) != len(labels):
            raise ValueError(f"{len(pixels)} images but {len(labels)} labels")
        self.pixels, self.labels = pixels, np.asarray(labels, dtype=np.int64)

    def image(self, i: int):
        from PIL import Image

        return Image.fromarray(self.pixels[i])


class FileSource(ImageSource):
    def __init__(self, paths: list[Path], labels, domains: list[str] | None = None):
        self.paths, self.labels, self.domains = paths, np.asarray(labels, dtype=np.int64), domains

    def image(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return img.copy()  # loaded and detached: a closed PIL image cannot be used


class HubSource(ImageSource):
    """Rows of a `datasets.Dataset`; the image column is decoded on access."""

    def __init__(self, dataset, image_column: str, labels, domains: list[str] | None = None):
        self.dataset, self.image_column = dataset, image_column
        self.labels, self.domains = np.asarray(labels, dtype=np.int64), domains

    def image(self, i: int):
        return self.dataset[int(i)][self.image_column]

    def images(self, idx):
        return list(self.dataset[[int(i) for i in idx]][self.image_column])  # one batched read


class Subset(ImageSource):
    def __init__(self, base: ImageSource, idx):
        self.base, self.idx = base, np.asarray(idx, dtype=np.int64)
        self.labels = base.labels[self.idx]
        self.domains = None if base.domains is None else [base.domains[i] for i in self.idx]

    def image(self, i: int):
        return self.base.image(int(self.idx[i]))

    def images(self, idx):
        return self.base.images(self.idx[np.asarray(idx, dtype=np.int64)])


class Concat(ImageSource):
    def __init__(self, parts: list[ImageSource]):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.labels = np.concatenate([p.labels for p in parts])
        has = [p.domains is not None for p in parts]
        self.domains = sum((p.domains for p in parts), []) if all(has) else None

    def image(self, i: int):
        part = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[part].image(i - int(self.offsets[part]))


def random_subset(source: ImageSource, limit: int | None, seed: int = 0) -> ImageSource:
    """`limit` examples drawn without replacement by a fixed seed (files and hub splits are
    often sorted by class, so a prefix would be one class), kept in their original order."""
    if limit is None or int(limit) >= len(source):
        return source
    idx = np.sort(np.random.default_rng(seed).choice(len(source), int(limit), replace=False))
    return Subset(source, idx)


# --- IDX (MNIST / Fashion-MNIST) -------------------------------------------------------

def read_idx(path: Path, fix: str = "re-create the file") -> np.ndarray:
    """An IDX file (gzipped or not): magic 0x0000 08 <ndim>, big-endian dims, uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile) as err:  # a gzip file cut short
        raise damaged(path, str(err), fix) from None
    if len(data) < 4:
        raise damaged(path, f"{len(data)} bytes", fix)
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise damaged(path, f"not an unsigned-byte IDX file (magic {data[:4].hex()})", fix)
    if len(data) < 4 + 4 * ndim:
        raise damaged(path, f"{len(data)} bytes, shorter than its header", fix)
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise damaged(path, f"{array.size} bytes of data for shape {shape}", fix)
    return array.reshape(shape)


FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


def fashion_mnist(folder: Path, split: str) -> ArraySource:
    images, labels = (folder / name for name in FASHION_MNIST_FILES[split])
    fix = "apt-get install --reinstall -y dataset-fashion-mnist"
    return ArraySource(read_idx(images, fix), read_idx(labels, fix))


# --- local layouts ---------------------------------------------------------------------

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
