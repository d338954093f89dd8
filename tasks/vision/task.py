"""Image classification, shared by every image task: preprocessing, batches, loss and metrics.
A subclass (vtab.py, suite.py, fashion_mnist.py) says where a split's images come from.

- Preprocessing with the model's own image processor (resize, rescale, normalise; PIL backend,
  no torchvision), a batch at a time; grey or RGBA images are converted to RGB first. No
  augmentation (neither paper states one).
- Loss: cross-entropy of the classifier (head trained in full at trainer.head_lr). Metric:
  top-1 `accuracy` on the evaluation split; with per-example domains (DomainNet) also one
  accuracy per domain (`clipart`, ..., `sketch`: LoFT Table 18).
- Subsets (`max_train_samples`, `eval_limit`) are drawn with a fixed seed (`subset_seed`), the
  same for every run: many sources are sorted by class, so a prefix would be one class.
- Checkpoint selection: `selection: last` (default: the protocols report the last checkpoint)
  or `half` (PSOFT's GLUE protocol on the evaluation split, loft/train/selection.py).
"""
from __future__ import annotations

import numpy as np
import torch

from loft.core.errors import ConfigError
from loft.train.selection import HalfSplit, SelectsCheckpoint
from tasks.base import ModelBundle, Task, model_loss, on_model_device
from tasks.vision.sources import ImageSource, image_subset

PIXELS = ("pixel_values",)  # the floating input: moved in the model's dtype too (a bf16 model gets bf16)


class ImageClassificationTask(SelectsCheckpoint, Task):
    """Shared by every image task: a subclass provides `load_split(role, data_dir)` for
    role "train" or "eval", returning an ImageSource."""
    model_kinds = ("image_cls",)

    name = "image"

    def __init__(self, name: str, num_labels: int, max_train_samples: int | None = None,
                 eval_limit: int | None = None, eval_batch_size: int = 64, subset_seed: int = 0,
                 selection: str = "last", eval_every="epoch", selection_seed: int = 0):
        self.name, self.num_labels = name, int(num_labels)
        self.max_train_samples, self.eval_limit = max_train_samples, eval_limit
        self.eval_batch_size, self.subset_seed = int(eval_batch_size), int(subset_seed)
        self.halves = HalfSplit(selection, eval_every, selection_seed)

    def model_args(self) -> dict:
        return {"num_labels": self.num_labels}

    def load_split(self, role: str, data_dir: str) -> ImageSource:
        raise NotImplementedError

    # --- data --------------------------------------------------------------------------

    def setup(self, bundle: ModelBundle, data_dir: str) -> None:
        self.processor = bundle.tokenizer  # the image processor travels in the tokenizer slot
        if self.processor is None or not callable(self.processor):
            raise ConfigError(f"task {self.name} needs an image model (model=tiny_vit or vit_base_patch16_224_in21k)")
        self.train = image_subset(self.load_split("train", data_dir), self.max_train_samples, self.subset_seed)
        self.eval = image_subset(self.load_split("eval", data_dir), self.eval_limit, self.subset_seed + 1)
        for role, source in (("train", self.train), ("eval", self.eval)):
            if len(source) == 0:
                raise ValueError(f"{self.name}: the {role} split is empty")
            if source.labels.min() < 0 or source.labels.max() >= self.num_labels:
                raise ConfigError(f"{self.name}: {role} labels span [{source.labels.min()}, {source.labels.max()}] "
                                 f"but the task has {self.num_labels} classes")
        self.halves.split(len(self.eval))

    def pixels(self, source: ImageSource, idx) -> torch.Tensor:
        images = [img if img.mode == "RGB" else img.convert("RGB") for img in source.images(idx)]
        return self.processor(images=images, return_tensors="pt")["pixel_values"]

    def num_train_examples(self) -> int:
        return len(self.train)

    def train_batches(self, micro_batch_size: int, epoch: int, seed: int):
        order = np.random.default_rng([seed, epoch]).permutation(len(self.train))
        for start in range(0, len(order), micro_batch_size):
            idx = order[start:start + micro_batch_size]
            yield {"pixel_values": self.pixels(self.train, idx), "labels": torch.from_numpy(self.train.labels[idx])}

    # --- loss and metrics --------------------------------------------------------------

    def loss(self, model, batch):
        return model_loss(model, batch, floating=PIXELS)

    @torch.no_grad()
    def predict(self, model, idx) -> np.ndarray:
        was_training = model.training
        model.eval()
        out = []
        try:
            for start in range(0, len(idx), self.eval_batch_size):
                pixel_values = self.pixels(self.eval, idx[start:start + self.eval_batch_size])
                inputs = on_model_device(model, {"pixel_values": pixel_values}, floating=PIXELS)
                out.append(model(**inputs).logits.argmax(-1).cpu())
        finally:
            model.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)

    def metrics(self, model, idx) -> dict[str, float]:
        idx = np.asarray(idx, dtype=np.int64)
        correct = self.predict(model, idx) == self.eval.labels[idx]
        metrics = {"accuracy": float(correct.mean())}
        if self.eval.domains is not None:  # DomainNet: one accuracy per domain (LoFT Table 18)
            domains = np.asarray(self.eval.domains)[idx]
            for domain in sorted(set(domains)):
                metrics[str(domain)] = float(correct[domains == domain].mean())
        return metrics

    def _selection_score(self, model, idx) -> float:
        return self.metrics(model, idx)["accuracy"]

    def evaluate(self, model) -> dict[str, float]:
        metrics = self.metrics(model, self.halves.report_idx)  # half: the loop left the best checkpoint
        return {**metrics, "eval_examples": float(len(self.halves.report_idx))}
