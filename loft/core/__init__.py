"""Shared types every layer uses and none owns: errors (`errors`), the model bundle (`bundle`), the
run key and the record path it names (`key`), the record schema (`schema`), the reading of dtype
settings (`dtypes`), data provenance for records (`provenance`), the repository paths (`paths`) and
the hub reachability check (`hub`). Imports nothing from the rest of the project (only torch, the
standard library and, inside the hub check, huggingface_hub), so loft/, tasks/ and scripts/ can all
use it."""
