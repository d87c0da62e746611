"""SciPy's compiled sparse kernels, called without its sparse classes.

A search multiplies small 0/1 membership matrices thousands of times a second; building a
``csr_matrix`` and going through its checks and dispatch costs 0.1–0.15 ms a product, as much as
the product itself for a batch of 50 portfolios. These are the kernels those classes call (in
``scipy.sparse._sparsetools`` since SciPy 0.x), so the sums are the same, in the same order, bit
for bit: ``tests/algorithms/test_fitness.py`` and ``test_bayesian.py`` check that against the
classes. Every output array must be zeroed by the caller: the kernels add into it.

- ``csr_tocsc(P, S, indptr, indices, data, col_ptr, row_idx, values)``: CSR → CSC (a counting
  sort; rows stay ascending within each column).
- ``csc_matvecs(P, S, W, col_ptr, row_idx, values, X, Y)``: ``Y += A @ X``, X (S, W), Y (P, W).
- ``csr_matvec(P, S, indptr, indices, data, x, y)``: ``y += A @ x``.
- ``csc_matvec(S, P, indptr, indices, data, r, y)``: the CSR arrays of A read as CSC arrays of Aᵀ,
  so ``y += Aᵀ @ r``.
"""

from scipy.sparse._sparsetools import csc_matvec, csc_matvecs, csr_matvec, csr_tocsc

__all__ = ["csc_matvec", "csc_matvecs", "csr_matvec", "csr_tocsc"]
