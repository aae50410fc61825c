"""Stage 2 steps on one pseudo-class against brute-force references written from the method description.

IDC ranks members ring by ring (ring 1: the m nearest the core, the core first; each later ring: the m untaken
members with the smallest mean distance to their k nearest taken members; ties to the lower position). The
vectorised ranking reads one distance matrix per pseudo-class when it fits the memory budget and computes
blocks in chunks when it does not: both must equal the reference, ties included (integer features make many).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bilaf.kernels import distances
from bilaf.method.denoise import denoise, denoise_with_intra, idc_order

SETTINGS = dict(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


def reference_idc(F: np.ndarray, core: int, k: int, cycle: float) -> list:
    n = len(F)
    D = np.sqrt(((F[:, None, :] - F[None, :, :]) ** 2).sum(-1))
    m = max(1, int(n * cycle))
    d0 = D[core].copy()
    d0[core] = -1.0
    order = sorted(range(n), key=lambda i: (d0[i], i))[:m]
    taken = list(order)
    for _ in range(1, n // m):
        cand = [i for i in range(n) if i not in set(taken)]
        dens = {i: np.sort(D[i, taken])[:k].mean() for i in cand}
        ring = sorted(cand, key=lambda i: (dens[i], i))[:m]
        taken += ring
    return taken


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(10, 70), d=st.integers(1, 6), k=st.integers(1, 12),
       cycle=st.sampled_from([0.05, 0.1, 0.2, 0.34, 1.0]), spread=st.integers(1, 4), data=st.data())
def test_idc_order_equals_reference_with_and_without_the_matrix(seed, n, d, k, cycle, spread, data):
    rng = np.random.default_rng(seed)
    F = rng.integers(-spread, spread + 1, size=(n, d)).astype(np.float64)
    core = data.draw(st.integers(0, n - 1))
    G = torch.from_numpy(F)
    want = reference_idc(F, core, k, cycle)
    with_matrix = idc_order(G, core, k=k, cycle_fraction=cycle, memory_budget="8GB",
                            D=distances.within_distance_matrix(G, memory_budget="8GB"))
    chunked = idc_order(G, core, k=k, cycle_fraction=cycle, memory_budget="1MB", D=None)
    assert with_matrix.tolist() == want
    assert chunked.tolist() == want


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), d=st.integers(1, 8),
       method=st.sampled_from(["idc", "density", "distance", "none"]), dtype=st.sampled_from(["float32", "float64"]),
       data=st.data())
def test_denoise_with_intra_keeps_what_denoise_keeps_and_means_over_the_kept(seed, n, d, method, dtype, data):
    rng = np.random.default_rng(seed)
    G = torch.from_numpy(rng.normal(size=(n, d))).to(getattr(torch, dtype))
    core = data.draw(st.integers(0, n - 1))
    keep, d_intra = denoise_with_intra(G, core, method=method, k=5)
    np.testing.assert_array_equal(keep, denoise(G, core, method=method, k=5))
    assert core in keep and np.all(np.diff(keep) > 0)
    kept = G[torch.as_tensor(keep)].double().numpy()
    want = np.sqrt(((kept[:, None] - kept[None]) ** 2).sum(-1)).mean(axis=1)
    np.testing.assert_allclose(d_intra, want, rtol=1e-4 if dtype == "float32" else 1e-10, atol=1e-5)


def test_within_distance_matrix_only_when_it_fits():
    G = torch.zeros((600, 4), dtype=torch.float64)
    assert distances.within_distance_matrix(G, memory_budget="8GB").shape == (600, 600)
    assert distances.within_distance_matrix(torch.zeros((400, 4)), memory_budget="1MB") is None


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 50), d=st.integers(1, 20),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_within_distance_matrix_forms_agree_and_are_symmetric(seed, n, d, dtype):
    G = torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d))).to(dtype)
    syrk = distances.within_distance_matrix(G, memory_budget="8GB")
    product = distances._within_by_product(G)  # the GPU form, run on the CPU
    for D in (syrk, product):
        np.testing.assert_array_equal(D, D.T)
        np.testing.assert_array_equal(np.diagonal(D), 0)
    F = G.double().numpy()
    want = np.sqrt(((F[:, None] - F[None]) ** 2).sum(-1))
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    np.testing.assert_allclose(syrk, want, atol=tol)
    np.testing.assert_allclose(product, want, atol=tol)
