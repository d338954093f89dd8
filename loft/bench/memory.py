"""Optimizer-state closed forms of the LoFT paper (Appendix E.2) and ours, from layer shapes."""
from __future__ import annotations

import torch

def layer_shapes(model: torch.nn.Module, targets: list[str]) -> list[tuple[int, int]]:
    from loft.methods import targeted_layers

    return list(targeted_layers(model, targets).values())


def state_formulas(layers: list[tuple[int, int]], r: int, methods: dict) -> dict:
    """Optimizer-state elements per the paper's accounting and ours, summed over adapted layers.

    Paper (E.2): LoRA  mn + (m+n)r [U,V] + 4(m+n)r [states]                    = mn + 5(m+n)r
                 LoFT  mn + (m+n)r + 2(m+n)r [prev. iterates] + 2(m+n)r [momentum]
                          + 2(m+n)r^2 [cross terms]                           = mn + 5(m+n)r + 2(m+n)r^2
    "State" below is everything beyond W0 (mn) and the factors ((m+n)r).
    Ours:        LoRA (AdamW)  2(m+n)r          (m and v of B and A)
                 LoFT          (m+n)r + (m+n)r(r+1)/2   (momentum + packed symmetric cross terms;
                               no previous iterates: calibration happens when a factor moves)
                 LoFT-simple   2(m+n)r
    """
    s = sum(m + n for m, n in layers)
    mn = sum(m * n for m, n in layers)
    packed = r * (r + 1) // 2
    elems = {
        "paper_lora": 4 * s * r, "paper_loft": 4 * s * r + 2 * s * r * r,
        "ours_lora": 2 * s * r, "ours_loft": s * r + s * packed, "ours_loft_simple": 2 * s * r,
    }
    out = {"layers": len(layers), "sum_m_plus_n": s, "sum_mn": mn, "bytes_per_element": 4,
           "state_bytes": {k: 4 * v for k, v in elems.items()},
           "total_bytes_with_W0_and_factors": {k: 4 * (v + mn + s * r) for k, v in elems.items()}}
    measured = {k: methods[k]["state_bytes"] for k in ("lora", "loft", "loft_simple")
                if methods.get(k, {}).get("state_bytes") is not None}
    out["measured_state_bytes"] = measured
    if "loft" in measured:
        out["loft_measured_over_paper"] = measured["loft"] / out["state_bytes"]["paper_loft"]
    if "lora" in measured:
        out["lora_measured_over_paper"] = measured["lora"] / out["state_bytes"]["paper_lora"]
    return out


def preset_layer_shapes(p: dict) -> list[tuple[int, int]]:
    """(out, in) of q, k, v, up, down in every layer of a preset, without building it."""
    h, i = p["hidden"], p["intermediate"]
    return [(h, h), (h, h), (h, h), (i, h), (h, i)] * p["layers"]
