"""LoRA-Pro through the runner on the LoFT paper's matrix problem (Figure 2, scaled down): at
full fine-tuning's step size it tracks full fine-tuning far better than LoRA does."""
from __future__ import annotations

from loft.runner import run
from tests.conftest import compose_config
from tests.integration.test_runner import SMALL_MATFAC


def test_lora_pro_tracks_full_fine_tuning_better_than_lora(runs_dir):
    ratios = {}
    for method in ("lora", "lora_pro"):
        record = run(compose_config(*SMALL_MATFAC, f"method={method}", "trainer.max_steps=300", runs_dir=runs_dir))
        ratios[method] = record["metrics"]["loss_ratio_to_full_ft"]
        assert record["metrics"]["full_ft_loss"] > 0
    # measured (48 x 32, rank 4 = rank of the target, 300 Adam steps at lr 0.1): final loss
    # LoRA 1.9e-5, LoRA-Pro 2.5e-11, full FT 4.7e-11, i.e. ratios 4e5 and 0.54
    assert ratios["lora_pro"] < 3 and ratios["lora"] > 1e3, ratios
