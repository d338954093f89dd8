"""How the LoFT optimizers see their factors: whole (one process, DDP) or row-sharded (FSDP2).

LoFT's large state lives per row of U = scale * B (m rows) and per row of V = A^T (n rows);
rows couple only through r x r quantities. So under FSDP2 B is sharded by rows (Shard(0),
FSDP's default) and A by columns (Shard(1), see `loft.train.distributed.lora_placement`), every
state tensor is sharded with its factor's rows, and a step needs only:

- all-reduces (sums over ranks) of r x r products: the Grams U^T U, V^T V, the two products
  of the calibration matrix, and the r x r Grams of low-rank Newton-Schulz;
- one scalar all-reduce for the global clipping norm;
- for LoFT-AdamW's projected update (BB5) only: the other factor whole. Row i of the dense
  update m~_ij / (sqrt(v~_ij) + eps) needs every V_j, because the element-wise division
  does not factor; V is n x r, the size of the LoRA parameter FSDP gathers for every
  forward anyway, and it is gathered transiently (the state stays sharded).

`Whole` makes every hook the identity, so one process runs exactly the code it ran before.
Checkpoints gather rows with the same rule (`gather`) and cut them back (`split`), so a
checkpoint does not depend on the number of processes.
"""
from __future__ import annotations

from typing import Sequence

import torch

try:  # DTensor is what FSDP2 turns parameters into
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor
except ImportError:  # pragma: no cover - torch builds without distributed
    DTensor = distribute_tensor = None


def is_dtensor(t) -> bool:
    return DTensor is not None and isinstance(t, DTensor)


def local(t: torch.Tensor) -> torch.Tensor:
    """The tensor a process holds: its shard of a DTensor (an alias, writes go through)."""
    return t.to_local() if is_dtensor(t) else t


def with_layout(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`t` copied into the memory order of `ref` (a state built by zeros_like(A.mT) is
    column-major): GEMMs round differently for another layout, and bit-for-bit resume
    needs the layout a straight run has."""
    order = sorted(range(ref.ndim), key=lambda d: ref.stride(d), reverse=True)
    inverse = sorted(range(ref.ndim), key=lambda d: order[d])
    return t.permute(order).contiguous().permute(inverse)


class Whole:
    """Every factor whole on this process: reductions are the identity."""

    sharded = False

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def gather(self, t: torch.Tensor, rows: int) -> torch.Tensor:
        return t

    def split(self, full: torch.Tensor) -> torch.Tensor:
        return full


class RowSharded(Whole):
    """Factors sharded by rows over the 1-D device mesh of FSDP2 (stacked state: dim 1)."""

    sharded = True

    def __init__(self, mesh):
        self.mesh = mesh
        self.group = mesh.get_group()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        torch.distributed.all_reduce(t, group=self.group)
        return t

    def gather(self, t: torch.Tensor, rows: int) -> torch.Tensor:
        """L x rows_local x k -> L x rows x k (shards may be uneven: DTensor pads)."""
        shape = (t.shape[0], rows, *t.shape[2:])
        stride = torch.empty(shape, device="meta").stride()
        full = DTensor.from_local(t.contiguous(), self.mesh, [Shard(1)], shape=torch.Size(shape),
                                  stride=stride).full_tensor()
        return with_layout(full, t)

    def split(self, full: torch.Tensor) -> torch.Tensor:
        """This process's rows of a gathered L x rows x k tensor, by FSDP2's chunking rule."""
        return with_layout(distribute_tensor(full, self.mesh, [Shard(1)], src_data_rank=None).to_local(), full)


class ShardingLayoutError(ValueError):
    """FSDP laid out LoRA factors in a way the row-sharded step cannot use (the method
    builder turns it into the runner's ConfigError; this package imports nothing of the project)."""


def factor_layout(pairs: Sequence) -> Whole:
    """Whole for plain tensors; RowSharded when FSDP2 sharded B by rows and A by columns."""
    sharded = [is_dtensor(t) for pair in pairs for t in (pair.B, pair.A)]
    if not any(sharded):
        return Whole()
    mesh = pairs[0].B.device_mesh
    for pair in pairs:
        if is_dtensor(pair.A) and pair.A.shape[1] % pair.A.device_mesh.size():
            raise ShardingLayoutError(
                f"LoFT under FSDP shards lora_A by columns, and FSDP2 does so only evenly: lora_A {tuple(pair.A.shape)} "
                f"does not split over {pair.A.device_mesh.size()} processes; use a process count that divides every "
                "adapted layer's input size, or DDP")
        ok = all(is_dtensor(t) and t.device_mesh == mesh and tuple(t.placements) == (Shard(dim),)
                 for t, dim in ((pair.B, 0), (pair.A, 1)))
        if not ok:
            raise ShardingLayoutError("LoFT under FSDP needs lora_B sharded by rows (Shard(0)) and lora_A by columns "
                                      "(Shard(1)) on one 1-D mesh; wrap with loft.train.distributed.wrap (fully_shard with "
                                      "shard_placement_fn=lora_placement(model))")
    return RowSharded(mesh)
