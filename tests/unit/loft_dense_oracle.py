"""Dense reference definitions of LoFT, written from the paper (Tastan et al.).

These oracles work in W-space with full m x n matrices, keep every past gradient and
factor iterate, and apply the sequential projections of eq. (8) explicitly. They are
deliberately slow and simple: they define *what* LoFT computes, not how an efficient
implementation computes it.

Notation (paper): W = W0 + U V^T, U = scale * B (m x r), V = A^T (n x r),
P_V = V V^+ (orthogonal projector onto col(V); pseudo-inverse when rank-deficient).
"""
from __future__ import annotations

import math

import torch

NS_COEFFS = (3.4445, -4.7750, 2.0315)


# --------------------------------------------------------------------------- basics
def proj(V: torch.Tensor) -> torch.Tensor:
    """P_V = V V^+ (eq. 5, footnote 1: pseudo-inverse when V is not of full rank)."""
    return V @ torch.linalg.pinv(V)


def lift(V: torch.Tensor) -> torch.Tensor:
    """(V^+)^T = V (V^T V)^+ : maps a W-space update N with N = N P_V to the factor update
    Delta_U with Delta_U V^T = N P_V (eq. 13)."""
    return torch.linalg.pinv(V).T


def newton_schulz5_dense(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Algorithm 3 (NewtonSchulz5), verbatim."""
    a, b, c = NS_COEFFS
    X = G / (torch.linalg.norm(G) + eps)
    transposed = G.shape[0] > G.shape[1]
    if transposed:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        Bm = b * A + c * A @ A
        X = a * X + Bm @ X
    if transposed:
        X = X.T
    return X


# ------------------------------------------------------------- history bookkeeping
class _History:
    """Stores (G_i, U_i, V_i) for every step i = 1..k (G_i = grad_W f at W_i)."""

    def __init__(self):
        self.G, self.U, self.V = [], [], []

    def push(self, G, U, V):
        self.G.append(G.clone())
        self.U.append(U.clone())
        self.V.append(V.clone())

    def __len__(self):
        return len(self.G)

    def projected(self, side: str, calibrated: bool):
        """Per-step gradients as seen from the subspace of the factor *not* updated.

        side == "U" (U is updated, subspace of V):
          calibrated:   g_i^V = G_i P_{V_i} P_{V_{i+1}} ... P_{V_k}           (eq. 8)
          uncalibrated: G_i V_i (V_i^T V_i)^+ V_k^T = G_i (V_i^+)^T V_k^T
                        (Algorithm 1 with C = I: scaled gradient of step i read
                         through the current V_k)
        side == "V": the same with G_i^T and U.
        """
        k = len(self)
        if side == "U":
            Gs, Fs = self.G, self.V
        else:
            Gs, Fs = [g.T for g in self.G], self.U
        out = []
        for i in range(k):
            if calibrated:
                X = Gs[i]
                for j in range(i, k):
                    X = X @ proj(Fs[j])
            else:
                X = Gs[i] @ lift(Fs[i]) @ Fs[k - 1].T
            out.append(X)
        return out


def _ema_sum(terms, beta):
    """(1 - beta) * sum_i beta^(k-i) terms_i, i = 1..k."""
    k = len(terms)
    acc = torch.zeros_like(terms[0])
    for i, t in enumerate(terms, start=1):
        acc = acc + (1 - beta) * beta ** (k - i) * t
    return acc


# ------------------------------------------------------------------ LoFT-AdamW
class DenseLoFTAdamW:
    """Eq. (9) with the AdamW conventions of torch.optim.AdamW (eps outside the sqrt,
    decoupled weight decay lr*wd applied to the factor being updated).

    When U is updated at step k:
        mt = (1-b1) sum b1^(k-i) g_i^V,   vt = (1-b2) sum b2^(k-i) g_i^V * g_i^V
        N  = (mt / (1-b1^k)) / (sqrt(vt / (1-b2^k)) + eps)
        U <- (1 - lr wd) U - lr * N (V_k^+)^T          so that Delta(U V^T) ∝ N P_{V_k}
    and symmetrically for V with G^T and P_U. The first step updates V (Algorithm 1 starts
    with update_U = False); the factors alternate.
    """

    def __init__(self, U, V, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 calibrate_momentum=True, calibrate_second_moment=True):
        self.U, self.V = U.clone(), V.clone()
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.cal_m, self.cal_v = calibrate_momentum, calibrate_second_moment
        self.hist = _History()
        self.update_U = False

    def _direction(self, side):
        k = len(self.hist)
        gm = self.hist.projected(side, self.cal_m)
        gv = gm if self.cal_v == self.cal_m else self.hist.projected(side, self.cal_v)
        mt = _ema_sum(gm, self.b1)
        vt = _ema_sum([g * g for g in gv], self.b2)
        return (mt / (1 - self.b1 ** k)) / (torch.sqrt(vt / (1 - self.b2 ** k)) + self.eps)

    def step(self, G):
        """G: dense gradient grad_W f(W_k) at the current iterate."""
        self.hist.push(G, self.U, self.V)
        decay = 1 - self.lr * self.wd
        if self.update_U:
            N = self._direction("U")
            self.U = decay * self.U - self.lr * N @ lift(self.V)
        else:
            N = self._direction("V")  # n x m, acts on W^T
            self.V = decay * self.V - self.lr * N @ lift(self.U)
        self.update_U = not self.update_U


class FactorLoFTSimple:
    """'LoFT (simple)' (Appendix E.2): Adam in factor space on the scaled (Building
    Block 2), momentum-calibrated (Building Block 3) gradients, without second-moment
    calibration and without the projected full update. Paper notation, scale 1.

        m^U <- b1 m^U C^V + (1-b1) g~_U,  v^U <- b2 v^U + (1-b2) g~_U^2   (every step)
        U   <- (1 - lr wd) U - lr (m^U/(1-b1^k)) / (sqrt(v^U/(1-b2^k)) + eps)   (U-steps)
    """

    def __init__(self, U, V, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.U, self.V = U.clone(), V.clone()
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.mU = torch.zeros_like(U)
        self.vU = torch.zeros_like(U)
        self.mV = torch.zeros_like(V)
        self.vV = torch.zeros_like(V)
        self.prevU, self.prevV = None, None
        self.k = 0
        self.update_U = False

    @staticmethod
    def _calib(prev, cur):
        if prev is None:
            return torch.eye(cur.shape[1], dtype=cur.dtype)
        return prev.T @ cur @ torch.linalg.pinv(cur.T @ cur)

    def step(self, G):
        self.k += 1
        U, V = self.U, self.V
        gU = G @ V @ torch.linalg.pinv(V.T @ V)
        gV = G.T @ U @ torch.linalg.pinv(U.T @ U)
        self.mU = self.b1 * self.mU @ self._calib(self.prevV, V) + (1 - self.b1) * gU
        self.mV = self.b1 * self.mV @ self._calib(self.prevU, U) + (1 - self.b1) * gV
        self.vU = self.b2 * self.vU + (1 - self.b2) * gU * gU
        self.vV = self.b2 * self.vV + (1 - self.b2) * gV * gV
        self.prevU, self.prevV = U.clone(), V.clone()
        bc1, bc2 = 1 - self.b1 ** self.k, 1 - self.b2 ** self.k
        decay = 1 - self.lr * self.wd
        if self.update_U:
            self.U = decay * U - self.lr * (self.mU / bc1) / (torch.sqrt(self.vU / bc2) + self.eps)
        else:
            self.V = decay * V - self.lr * (self.mV / bc1) / (torch.sqrt(self.vV / bc2) + self.eps)
        self.update_U = not self.update_U


# ------------------------------------------------------------------- LoFT-Muon
class DenseLoFTMuon:
    """Algorithm 5 in W-space. With momentum mu and no dampening (Algorithm 2, line 4):
        mt = sum_i mu^(k-i) g_i^V                         (eq. 8 without (1-beta))
        U <- (1 - lr wd) U - lr * NS5(mt) (V_k^+)^T      (NS5(mt) already lies in row(V_k))
    and symmetrically for V; the first step updates V."""

    def __init__(self, U, V, lr, momentum=0.95, weight_decay=0.0, ns_steps=5):
        self.U, self.V = U.clone(), V.clone()
        self.lr, self.mu, self.wd, self.ns_steps = lr, momentum, weight_decay, ns_steps
        self.hist = _History()
        self.update_U = False

    def step(self, G):
        self.hist.push(G, self.U, self.V)
        side = "U" if self.update_U else "V"
        gs = self.hist.projected(side, calibrated=True)
        k = len(gs)
        mt = sum(self.mu ** (k - i) * g for i, g in enumerate(gs, start=1))
        O = newton_schulz5_dense(mt, steps=self.ns_steps)
        decay = 1 - self.lr * self.wd
        if self.update_U:
            self.U = decay * self.U - self.lr * O @ lift(self.V)
        else:
            self.V = decay * self.V - self.lr * O @ lift(self.U)
        self.update_U = not self.update_U


class DenseMuon:
    """Algorithm 2 (Muon) on W with decoupled weight decay: W <- (1 - lr wd) W - lr NS5(m)."""

    def __init__(self, W, lr, momentum=0.95, weight_decay=0.0, ns_steps=5):
        self.W = W.clone()
        self.lr, self.mu, self.wd, self.ns_steps = lr, momentum, weight_decay, ns_steps
        self.m = torch.zeros_like(W)

    def step(self, G):
        self.m = self.mu * self.m + G
        self.W = (1 - self.lr * self.wd) * self.W - self.lr * newton_schulz5_dense(self.m, self.ns_steps)


# -------------------------------------------------------------- problem helpers
def dense_grad(loss_fn, W: torch.Tensor) -> torch.Tensor:
    """G = grad_W f(W) by autograd on the dense matrix."""
    Wd = W.detach().clone().requires_grad_(True)
    loss_fn(Wd).backward()
    return Wd.grad.detach()


def well_conditioned(rows: int, cols: int, gen: torch.Generator, lo=0.7, hi=1.4,
                     dtype=torch.float64) -> torch.Tensor:
    """A random rows x cols matrix with singular values in [lo, hi] (keeps the Gram
    matrices of the factors well conditioned so round-off stays at the 1e-12 level)."""
    k = min(rows, cols)
    Q1, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=dtype))
    Q2, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=dtype))
    s = torch.linspace(lo, hi, k, dtype=dtype)
    return Q1 @ torch.diag(s) @ Q2.T


def kaiming_uniform_like_peft(r: int, n: int, gen: torch.Generator, dtype=torch.float64):
    """PEFT initialises lora_A with kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(n), 1/sqrt(n))."""
    bound = math.sqrt(6.0 / ((1 + 5.0) * n))  # gain^2 = 2/(1+a^2), bound = gain*sqrt(3/fan_in)
    return (torch.rand(r, n, generator=gen, dtype=dtype) * 2 - 1) * bound
