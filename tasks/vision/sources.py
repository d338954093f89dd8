"""Image sources: one interface over in-memory arrays, image files and hub datasets, so the
task code never cares where pixels come from.

A source is a sequence of (image, label) with optional per-example domains:
`len(source)`, `source.image(i) -> PIL.Image`, `source.labels` (int array), `source.domains`
(list of str or None). Images are decoded lazily (a batch at a time), so a 400k-image hub
dataset or folder costs only its index in memory. `image_subset` is a seeded subset of a source,
as a view.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


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


def image_subset(source: ImageSource, limit: int | None, seed: int = 0) -> ImageSource:
    """`limit` examples drawn without replacement by a fixed seed (files and hub splits are
    often sorted by class, so a prefix would be one class), kept in their original order, as a
    view. The draw is `default_rng(seed).choice(n, limit, replace=False)`, not the permutation
    of `tasks.sources.random_subset` (other rows for the same seed): kept, so the image subsets
    of earlier records stay the same."""
    if limit is None or int(limit) >= len(source):
        return source
    idx = np.sort(np.random.default_rng(seed).choice(len(source), int(limit), replace=False))
    return Subset(source, idx)
