"""Image splits from the hub: one split of a hub dataset as an ImageSource (the fallback rule,
local files first, then the hub, is `tasks.sources.hub_or_missing`)."""
from __future__ import annotations

from loft.core.errors import ConfigError
from tasks.vision.sources import HubSource


def hub_split(dataset: str, split: str, image_column: str | None = None, label_column: str | None = None,
              domain_column: str | None = None, class_names: list[str] | None = None) -> HubSource:
    """One split of a hub dataset; columns found from its features when not given (the first
    Image column; the first ClassLabel column, else `label`)."""
    import datasets

    rows = datasets.load_dataset(dataset, split=split)
    features = rows.features
    image_column = image_column or next((k for k, f in features.items() if isinstance(f, datasets.Image)), None)
    label_column = label_column or next((k for k, f in features.items() if isinstance(f, datasets.ClassLabel)),
                                        "label")
    if image_column is None or label_column not in features:
        raise ConfigError(f"{dataset}[{split}]: cannot tell the image/label columns of {dict(features)}; "
                         f"set task.image_column and task.label_column")
    values = rows[label_column]
    if class_names:
        labels = [list(class_names).index(v) if isinstance(v, str) else int(v) for v in values]
    elif values and isinstance(values[0], str):
        raise ConfigError(f"{dataset}[{split}]: string labels in {label_column!r}; list them in task.class_names")
    else:
        labels = [int(v) for v in values]
    domains = [str(d) for d in rows[domain_column]] if domain_column and domain_column in features else None
    return HubSource(rows, image_column, labels, domains)

