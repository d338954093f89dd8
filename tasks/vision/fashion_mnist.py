"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (IDX files under
/usr/share/datasets/fashion-mnist/, `task.folder`; train 60000 / test 10000, 10 classes,
28 x 28 grey): the offline real-data check of the image tasks.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from tasks.base import DataMissingError
from tasks.data_files import damaged
from tasks.vision.sources import ArraySource, ImageSource
from tasks.vision.task import ImageClassificationTask

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FIX = "apt-get install -y dataset-fashion-mnist"


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


class FashionMnistTask(ImageClassificationTask):
    """Fashion-MNIST (10 classes, 28 x 28 grey) from the Debian package's IDX files."""

    def __init__(self, name: str = "image_fashion_mnist", folder: str = FASHION_MNIST_DIR, **kwargs):
        super().__init__(name, kwargs.pop("num_labels", 10), **kwargs)
        self.folder = Path(folder)

    def load_split(self, role: str, data_dir: str) -> ImageSource:
        split = "train" if role == "train" else "test"
        missing = [f for f in FASHION_MNIST_FILES[split] if not (self.folder / f).is_file()]
        if missing:
            raise DataMissingError(f"Fashion-MNIST files {missing} not found in {self.folder}. Fix: "
                                   f"`{FASHION_MNIST_FIX}` (Debian/Ubuntu, as root), or set task.folder to a "
                                   f"folder holding {', '.join(FASHION_MNIST_FILES[split])}")
        return fashion_mnist(self.folder, split)
