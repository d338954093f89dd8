"""The step benchmark (scripts/bench_step.py) end to end on a tiny preset, and the optimised
LoFT-AdamW paths against plain formulations. No timing assertions: performance claims come
from the script (README, "Performance"), not from timed tests."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from loft.optim import LoFTAdamW
from loft.optim.packed import _triu, congruence_matrix, pack_outer, packed_size, reconstruction_matrix
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench_step  # noqa: E402

METHOD_FIELDS = {"step_s", "opt_step_s", "peak_bytes", "state_bytes"}
TINY = ["--preset", "tiny", "--warmup", "1", "--samples", "1"]


@pytest.fixture(scope="module")
def tiny_json():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_step.py"), *TINY, "--rank", "4", "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.slow
def test_json_schema_and_positive_ratios(tiny_json):
    res = tiny_json
    assert {"preset", "tokens_per_step", "rank", "methods", "ratios_vs_lora"} <= res.keys()
    assert res["preset"] == "tiny" and res["rank"] == 4 and res["tokens_per_step"] == 2 * 32
    for name in ("lora", "loft", "loft_simple"):  # the methods this repository always has
        row = res["methods"][name]
        assert METHOD_FIELDS <= row.keys()
        assert row["step_s"] > 0 and row["opt_step_s"] > 0 and row["peak_bytes"] > 0 and row["state_bytes"] > 0
    assert {"loft", "loft_simple"} <= res["ratios_vs_lora"].keys()
    for name in bench_step.METHODS[1:]:  # every other method: a positive ratio or a reason
        if name in res["ratios_vs_lora"]:
            assert res["ratios_vs_lora"][name] > 0
        else:
            assert res["methods"][name].get("available") is False and res["unavailable"][name]


@pytest.mark.slow
def test_state_bytes_equal_closed_forms(tiny_json):
    f = tiny_json["state_formulas"]
    assert f["measured_state_bytes"]["lora"] == f["state_bytes"]["ours_lora"]
    assert f["measured_state_bytes"]["loft"] == f["state_bytes"]["ours_loft"]
    assert f["measured_state_bytes"]["loft_simple"] == f["state_bytes"]["ours_loft_simple"]
    assert f["loft_measured_over_paper"] < 0.6


def test_missing_method_is_reported_not_fatal():
    res = bench_step.run(bench_step.parse_args([*TINY, "--memory", "--methods", "lora", "no_such_method"]))
    assert res["methods"]["no_such_method"]["available"] is False
    assert "no_such_method" in res["unavailable"]
    assert res["methods"]["lora"]["state_bytes"] > 0


# ----- optimised paths == plain paths ---------------------------------------------------

def test_packed_helpers_equal_gather_definitions():
    g = torch.Generator().manual_seed(0)
    for r in (1, 3, 8):
        rows, cols, off = _triu(r, torch.device("cpu"))
        x = torch.randn(2, 5, r, generator=g, dtype=torch.float64)
        assert torch.equal(pack_outer(x), x[..., rows] * x[..., cols])
        q = (x[..., rows] * x[..., cols]) * torch.where(off, 2.0, 1.0).to(x.dtype)
        assert torch.equal(reconstruction_matrix(x), q.mT)
        c = torch.randn(2, r, r, generator=g, dtype=torch.float64)
        a, b, cc, dd = rows[:, None], cols[:, None], rows[None, :], cols[None, :]
        ref = c[..., a, cc] * c[..., b, dd] + off[:, None] * (c[..., b, cc] * c[..., a, dd])
        assert torch.equal(congruence_matrix(c), ref)


def plain_projected_adam(exp_avg, cross, other, pinv, bc1, bc2, eps, bound):
    """The unfused, unchunked formula (Algorithm 1 with the moment floor), as first written."""
    m_full = exp_avg @ other.mT
    v_full = cross @ reconstruction_matrix(other)
    floor = m_full.square() / bound if bound != float("inf") else torch.zeros_like(v_full)
    v_full = torch.maximum(v_full, floor)
    return (m_full / bc1 / ((v_full / bc2).sqrt() + eps)) @ (other @ pinv)


@pytest.mark.parametrize("bound", [3.7, float("inf")])
@pytest.mark.parametrize("chunk_elements", [None, 1, 7 * 9, 1 << 30])
def test_blocked_projected_adam_equals_plain(bound, chunk_elements):
    g = torch.Generator().manual_seed(1)
    L, m, n, r = 3, 150, 9, 4  # > 64 rows: blocks split rows (runs of 64) as well as layers
    exp_avg = torch.randn(L, m, r, generator=g, dtype=torch.float64)
    grads = torch.randn(6, L, m, r, generator=g, dtype=torch.float64)
    cross = sum(pack_outer(x) for x in grads)
    other = torch.randn(L, n, r, generator=g, dtype=torch.float64)
    pinv = torch.linalg.pinv(other.mT @ other)
    opt = LoFTAdamW([torch.zeros(1, requires_grad=True)], chunk_elements=chunk_elements)
    got = opt._projected_adam(exp_avg, cross, other, pinv, 0.3, 0.02, 1e-3, bound)
    want = plain_projected_adam(exp_avg, cross, other, pinv, 0.3, 0.02, 1e-3, bound)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_blocked_steps_equal_single_block_steps(dtype, rtol):
    """Several layers of one shape, stepped with tiny blocks (splitting layers and rows) and
    with one block: same factors after steps of both alternation phases."""
    g = torch.Generator().manual_seed(2)
    L, m, n, r = 3, 130, 10, 3

    def make(chunk):
        gen = torch.Generator().manual_seed(3)
        Bs = [(torch.randn(m, r, generator=gen, dtype=dtype) / math.sqrt(r)).requires_grad_() for _ in range(L)]
        As = [(torch.randn(r, n, generator=gen, dtype=dtype) / math.sqrt(n)).requires_grad_() for _ in range(L)]
        opt = LoFTAdamW([*Bs, *As], lr=0.01, weight_decay=0.1, pairs=list(zip(Bs, As)), chunk_elements=chunk)
        return Bs, As, opt

    runs = [make(None), make(5), make(1 << 30)]
    for _ in range(5):
        grads = [torch.randn(m, n, generator=g, dtype=dtype) for _ in range(L)]
        for Bs, As, opt in runs:
            for B, A, G in zip(Bs, As, grads):
                B.grad, A.grad = G @ A.detach().T, B.detach().T @ G
            opt.step()
    _, _, ref_opt = runs[-1]
    for Bs, As, opt in runs[:-1]:
        for x, y in zip([*Bs, *As], [*runs[-1][0], *runs[-1][1]]):
            torch.testing.assert_close(x, y, rtol=rtol, atol=rtol * 1e-2)
        for k, v in opt._groups[0].state.items():
            torch.testing.assert_close(v, ref_opt._groups[0].state[k], rtol=rtol, atol=rtol * 1e-2)
    assert runs[0][2]._groups[0].state["second_U"].shape[-1] == packed_size(r)
