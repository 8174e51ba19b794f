"""The memory-lean losses equal the readable reference losses, values and gradients, within 1e-5."""
from __future__ import annotations

import pytest
import torch

from trainer.losses.grpo import grpo_loss
from trainer.losses.lean import lean_grpo_loss, lean_sdpo_loss, lean_token_logprobs
from trainer.losses.sdpo import sdpo_loss
from trainer.sequences import token_logprobs

B, T, H, V = 3, 7, 16, 50
TOL = 1e-5


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h_s = torch.randn(B, T, H, generator=g, dtype=torch.float64).float()
    h_t = torch.randn(B, T, H, generator=g).float()
    w_s = (torch.randn(V, H, generator=g) * 0.5).float()
    w_t = (torch.randn(V, H, generator=g) * 0.5).float()
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T)
    mask[0, 5:] = 0  # a shorter response
    mask[2, :2] = 0
    return h_s, w_s, h_t, w_t, ids, mask


def _reference(h_s, w_s, h_t, w_t, ids, mask, **kw):
    h_s, w_s = h_s.clone().requires_grad_(), w_s.clone().requires_grad_()
    loss, stats = sdpo_loss(h_s @ w_s.T, h_t @ w_t.T, ids, mask, **kw)
    loss.backward()
    return loss.detach(), stats, h_s.grad, w_s.grad


def _lean(h_s, w_s, h_t, w_t, ids, mask, chunk, **kw):
    h_s, w_s = h_s.clone().requires_grad_(), w_s.clone().requires_grad_()
    loss, stats = lean_sdpo_loss(h_s, w_s, h_t, w_t, ids, mask, chunk_tokens=chunk, **kw)
    loss.backward()
    return loss.detach(), stats, h_s.grad, w_s.grad


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("top_k", [None, 1, 5, V + 3])
@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_lean_sdpo_equals_reference(alpha, top_k, chunk):
    inputs = _inputs(seed=int(alpha * 4) + (top_k or 0))
    ref = _reference(*inputs, alpha=alpha, top_k=top_k)
    lean = _lean(*inputs, chunk, alpha=alpha, top_k=top_k)
    assert torch.allclose(lean[0], ref[0], atol=TOL, rtol=TOL)
    assert torch.allclose(lean[2], ref[2], atol=TOL, rtol=TOL)
    assert torch.allclose(lean[3], ref[3], atol=TOL, rtol=TOL)
    for key, value in ref[1].items():
        assert lean[1][key] == pytest.approx(value, abs=TOL), key
    assert ref[2].abs().sum() > 0  # a real gradient, not a vacuous match


def test_lean_sdpo_with_importance_weights_and_sample_weights():
    h_s, w_s, h_t, w_t, ids, mask = _inputs(seed=3)
    with torch.no_grad():
        own = token_logprobs(h_s @ w_s.T, ids)
    old = own + torch.linspace(-1.5, 1.5, B * T).view(B, T)  # some ratios above the clip of 2
    weights = torch.tensor([1.0, 0.0, 1.0])
    kw = dict(alpha=0.5, top_k=5, old_logprobs=old, sample_weights=weights, is_clip=2.0)
    ref = _reference(h_s, w_s, h_t, w_t, ids, mask, **kw)
    lean = _lean(h_s, w_s, h_t, w_t, ids, mask, 3, **kw)
    assert ref[1]["is_clip_frac"] > 0
    assert torch.allclose(lean[0], ref[0], atol=TOL) and torch.allclose(lean[2], ref[2], atol=TOL)
    assert torch.allclose(lean[3], ref[3], atol=TOL)
    assert lean[1] == pytest.approx(ref[1], abs=TOL)
    assert lean[2][1].abs().sum() == 0  # m_i = 0: no gradient for that sample


def test_lean_sdpo_normalizer_scales_the_sum():
    inputs = _inputs(seed=5)
    own, _, grad_own, _ = _lean(*inputs, 4, alpha=0.5, top_k=5)
    total, _, grad_total, _ = _lean(*inputs, 4, alpha=0.5, top_k=5, normalizer=100.0)
    active = float(inputs[5].sum())
    assert total == pytest.approx(float(own) * active / 100.0, rel=1e-6)
    assert torch.allclose(grad_total, grad_own * active / 100.0, atol=1e-7)


def test_lean_sdpo_without_active_tokens_is_zero_and_attached():
    h_s, w_s, h_t, w_t, ids, _ = _inputs()
    h_s.requires_grad_()
    loss, stats = lean_sdpo_loss(h_s, w_s, h_t, w_t, ids, torch.zeros(B, T))
    loss.backward()
    assert float(loss.detach()) == 0.0 and stats["active_tokens"] == 0 and torch.all(h_s.grad == 0)


def test_lean_sdpo_under_no_grad_gives_the_value():
    inputs = _inputs(seed=7)
    ref = _reference(*inputs, alpha=0.5, top_k=5)
    with torch.no_grad():
        loss, _ = lean_sdpo_loss(*inputs, alpha=0.5, top_k=5, chunk_tokens=2)
    assert loss == pytest.approx(float(ref[0]), abs=TOL)


def test_lean_sdpo_bfloat16_weights_match_reference_in_bfloat16():
    h_s, w_s, h_t, w_t, ids, mask = (x.bfloat16() if x.is_floating_point() else x for x in _inputs(seed=9))
    mask = mask.float()
    ref = _reference(h_s, w_s, h_t, w_t, ids, mask, alpha=0.5, top_k=5)
    lean = _lean(h_s, w_s, h_t, w_t, ids, mask, 4, alpha=0.5, top_k=5)
    assert lean[2].dtype == torch.bfloat16 and lean[3].dtype == torch.bfloat16
    assert float(lean[0]) == pytest.approx(float(ref[0]), rel=1e-3)
    assert torch.allclose(lean[3].float(), ref[3].float(), atol=2e-2, rtol=2e-2)


def test_lean_sdpo_rejects_bad_shapes():
    h_s, w_s, h_t, w_t, ids, mask = _inputs()
    with pytest.raises(ValueError, match="head weight"):
        lean_sdpo_loss(h_s, w_s[:, :3], h_t, w_t, ids, mask)
    with pytest.raises(ValueError, match="vocabularies"):
        lean_sdpo_loss(h_s, w_s, h_t, w_t[:10], ids, mask)
    with pytest.raises(ValueError, match="chunk_tokens"):
        lean_sdpo_loss(h_s, w_s, h_t, w_t, ids, mask, chunk_tokens=0)


@pytest.mark.parametrize("chunk", [1, 5, 1024])
@pytest.mark.parametrize("kl_coef", [0.0, 0.1])
def test_lean_grpo_equals_reference(chunk, kl_coef):
    h, w, h_ref, w_ref, ids, mask = _inputs(seed=11)
    advantages = torch.tensor([1.0, -0.5, 0.25])
    with torch.no_grad():
        ref_logp = token_logprobs(h_ref @ w_ref.T, ids)
        old = token_logprobs(h @ w.T, ids) + 0.3 * torch.randn(B, T, generator=torch.Generator().manual_seed(1))

    def run(logp_fn):
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        logp = logp_fn(hh, ww)
        loss, stats = grpo_loss(logp, old, advantages, mask, ref_logprobs=ref_logp if kl_coef else None,
                                kl_coef=kl_coef)
        loss.backward()
        return loss.detach(), stats, hh.grad, ww.grad

    ref = run(lambda hh, ww: token_logprobs(hh @ ww.T, ids))
    lean = run(lambda hh, ww: lean_token_logprobs(hh, ww, ids, mask, chunk_tokens=chunk))
    assert torch.allclose(lean[0], ref[0], atol=TOL)
    assert torch.allclose(lean[2], ref[2], atol=TOL) and torch.allclose(lean[3], ref[3], atol=TOL)
    assert lean[1] == pytest.approx(ref[1], abs=TOL)
    assert ref[3].abs().sum() > 0

    hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()  # gradient formed in the forward pass
    loss, stats = lean_grpo_loss(hh, ww, ids, mask, advantages, old_logprobs=old, chunk_tokens=chunk,
                                 ref_logprobs=ref_logp if kl_coef else None, kl_coef=kl_coef)
    loss.backward()
    assert torch.allclose(loss.detach(), ref[0], atol=TOL) and stats == pytest.approx(ref[1], abs=TOL)
    assert torch.allclose(hh.grad, ref[2], atol=TOL) and torch.allclose(ww.grad, ref[3], atol=TOL)


def test_lean_token_logprobs_values_without_mask():
    h, w, _, _, ids, _ = _inputs(seed=13)
    assert torch.allclose(lean_token_logprobs(h, w, ids, chunk_tokens=2), token_logprobs(h @ w.T, ids), atol=TOL)


@pytest.mark.parametrize("top_k", [None, 5])
def test_temperature_divides_both_models_logits(top_k):
    inputs = _inputs(seed=17)
    h_s, w_s, h_t, w_t, ids, mask = inputs
    ref = _reference(*inputs, alpha=0.5, top_k=top_k, temperature=0.7)
    scaled = _reference(h_s / 0.7, w_s, h_t / 0.7, w_t, ids, mask, alpha=0.5, top_k=top_k)  # logits / 0.7
    assert torch.allclose(ref[0], scaled[0], atol=TOL) and torch.allclose(ref[3], scaled[3], atol=TOL)
    lean = _lean(*inputs, 3, alpha=0.5, top_k=top_k, temperature=0.7)
    assert torch.allclose(lean[0], ref[0], atol=TOL)
    assert torch.allclose(lean[2], ref[2], atol=TOL) and torch.allclose(lean[3], ref[3], atol=TOL)


def test_lean_grpo_with_temperature_and_rollout_correction():
    from trainer.losses.lean import rollout_is_weights

    h, w, _, _, ids, mask = _inputs(seed=19)
    advantages = torch.tensor([1.0, -0.5, 0.25])
    with torch.no_grad():
        rollout = token_logprobs(h @ w.T, ids, temperature=0.8) + torch.linspace(-1.5, 1.5, B * T).view(B, T)

    def reference():
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        logp = token_logprobs(hh @ ww.T, ids, temperature=0.8)
        weights = rollout_is_weights(logp, rollout, 2.0)
        loss, stats = grpo_loss(logp, logp.detach(), advantages, mask, token_weights=weights)
        loss.backward()
        return loss.detach(), hh.grad, ww.grad, weights

    ref_loss, ref_h, ref_w, weights = reference()
    assert (weights == 2.0).any() and (weights < 1.0).any()  # clipped and down-weighted tokens
    hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss, _ = lean_grpo_loss(hh, ww, ids, mask, advantages, chunk_tokens=4, temperature=0.8,
                             rollout_logprobs=rollout, rollout_is_clip=2.0)
    loss.backward()
    assert torch.allclose(loss.detach(), ref_loss, atol=TOL)
    assert torch.allclose(hh.grad, ref_h, atol=TOL) and torch.allclose(ww.grad, ref_w, atol=TOL)
    # the weights scale each token's term: with all weights 1 the loss differs
    plain, _ = grpo_loss(token_logprobs(h @ w.T, ids, 0.8), token_logprobs(h @ w.T, ids, 0.8), advantages, mask)
    assert not torch.allclose(plain, ref_loss)


def test_lean_token_logprobs_with_temperature():
    h, w, _, _, ids, _ = _inputs(seed=23)
    hh, hr = h.clone().requires_grad_(), h.clone().requires_grad_()
    lean = lean_token_logprobs(hh, w, ids, chunk_tokens=3, temperature=0.6)
    ref = token_logprobs(hr @ w.T, ids, temperature=0.6)
    assert torch.allclose(lean, ref, atol=TOL)
    lean.sum().backward()
    ref.sum().backward()
    assert torch.allclose(hh.grad, hr.grad, atol=TOL)
