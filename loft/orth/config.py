"""Configuration of LOFT (low-rank orthogonal fine-tuning, Han et al. 2026)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .support import GRADIENT_SUPPORTS, REQUIRES_GRADIENT, SUPPORTS
from .transforms import TRANSFORMS


@dataclass
class LoftOrthConfig:
    """W+ = W0 (I + P^T (T - I) P) on every targeted layer; only T's parameters train.

    r: rank, the support P is r x n (n = in-features); r <= min(in, out) of every target.
    support: how P is chosen, one of SUPPORTS (principal, gradsvd, skewgrad, random, coordinate);
        gradsvd and skewgrad need calibration batches, coordinate uses them when given.
    transform: parametrisation of the r x r orthogonal T, one of TRANSFORMS (cayley,
        cayley_neumann, exp, householder, givens).
    target_modules: list of module names (exact, or matching the end of the qualified name after
        a '.', as in PEFT) or one regex (re.fullmatch on the qualified name). Targets must be
        nn.Linear or transformers' Conv1D.
    calibration_batches: how many batches of the calibration iterable the one-off gradient pass uses.
    calibration_passes: sweeps over those batches. 1: single-pass sketch (Tropp et al. 2017).
        p > 1: randomised range finder with p - 2 power iterations (Halko et al. 2011), exact
        projection in the last sweep; far more accurate when the gradient spectrum decays
        slowly, at p times the calibration cost (the batches are kept in a list between sweeps).
        coordinate always uses one pass.
    oversample: the range sketch has k = r + oversample columns (single pass: co-range 2k + 1);
        the extra memory per layer during calibration is at most (m + n)(3k + 1) float32
        numbers (gradsvd, coordinate) or twice that (skewgrad), never m x n.
    seed: seeds the sketches' test matrices, random supports and Householder vectors.
    neumann_terms: cayley_neumann's t (PEFT's num_cayley_neumann_terms): T = I + 2K + ... + K^(t-1).
    neumann_eps: cayley_neumann rescales K to ||K||_F <= eps when set (PEFT's cayley_neumann_eps).
    householder_reflections: an even count of reflections; None = r rounded up to even.
    givens_rounds: number of round-robin rounds of plane rotations; None = all (r(r-1)/2 angles).
    """

    r: int
    support: str
    transform: str
    target_modules: list[str] | str
    calibration_batches: int = 8
    calibration_passes: int = 1
    oversample: int = 8
    seed: int = 0
    neumann_terms: int = 5
    neumann_eps: float | None = None
    householder_reflections: int | None = None
    givens_rounds: int | None = None

    def __post_init__(self):
        if self.r < 1:
            raise ValueError(f"r must be positive, got {self.r}")
        if self.support not in SUPPORTS:
            raise ValueError(f"unknown support {self.support!r}; choose one of {SUPPORTS}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; choose one of {TRANSFORMS}")
        if not isinstance(self.target_modules, str):
            self.target_modules = list(self.target_modules)
            if not self.target_modules:
                raise ValueError("target_modules is empty")
        if self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be positive, got {self.calibration_batches}")
        if self.calibration_passes < 1:
            raise ValueError(f"calibration_passes must be positive, got {self.calibration_passes}")
        if self.oversample < 0:
            raise ValueError(f"oversample must be >= 0, got {self.oversample}")
        if self.neumann_terms < 2:
            raise ValueError(f"neumann_terms must be >= 2, got {self.neumann_terms}")
        if self.neumann_eps is not None and not 0 < self.neumann_eps < 1:
            raise ValueError(f"neumann_eps must be in (0, 1), got {self.neumann_eps}")

    @property
    def needs_calibration(self) -> bool:
        """The support cannot be chosen without calibration batches (gradsvd, skewgrad)."""
        return self.support in REQUIRES_GRADIENT

    @property
    def uses_calibration(self) -> bool:
        """The support reads calibration gradients when given them (also coordinate)."""
        return self.support in GRADIENT_SUPPORTS

    def to_dict(self) -> dict:
        return asdict(self)
