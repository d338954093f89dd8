"""LoFT optimizers for LoRA factor pairs (Tastan et al. 2026), and LoRA-Pro (Wang et al. 2025)."""
from .loft_adamw import LoFTAdamW, adam_moment_bound
from .loft_muon import LoFTMuon, LoFTSGD
from .lora_pro import LoRAProAdamW
from .newton_schulz import newton_schulz5, newton_schulz5_lowrank
from .pairs import LoraPair, lora_pairs
from .sharding import ShardingLayoutError

__all__ = ["LoFTAdamW", "LoFTMuon", "LoFTSGD", "LoRAProAdamW", "LoraPair", "ShardingLayoutError", "lora_pairs", "newton_schulz5",
           "newton_schulz5_lowrank", "adam_moment_bound"]
