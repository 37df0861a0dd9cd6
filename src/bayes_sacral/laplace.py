"""Fast approximate posteriors: a Laplace approximation corrected by Pareto-smoothed importance sampling (PSIS).

For simulation studies that refit one model to thousands of data sets (design operating characteristics), where a
NUTS refit per data set is the bottleneck. The approximation is built on the model's unconstrained space:

* without a hierarchical scale, the proposal is the Gaussian at the posterior mode with the inverse negative Hessian
  as covariance;
* with one (``<name>_sd`` whose non-centred offsets ``<name>_z`` are also free), the posterior is integrated over a
  grid of the scale's log (nested Laplace, as in INLA): at each grid value the other coordinates get their
  conditional mode, Hessian and the mode's slope in the scale, and the proposal is the mixture of these Gaussians with
  cell weights from the Laplace marginal of the scale. A single Gaussian misses the funnel between a scale and its
  offsets; the mixture follows it.

Draws from the proposal are importance-weighted by the exact (unnormalised) log density and the weights are
Pareto-smoothed. Each fit reports Pareto k̂ and the weights' effective sample size; callers escalate to NUTS when
k̂ > 0.7 (Vehtari et al., 2024, *JMLR* 25:72) or the ESS is too small, so a poor approximation is never used silently.

Everything is compiled once per model structure (PyTensor C backend: log density, gradient and Hessian at a point;
log density and requested outputs over a batch of draws); new data go in through the model's ``pm.Data`` containers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LaplaceIS", "ApproxFit", "psis"]

MODE = "CVM"


@dataclass
class ApproxFit:
    """One approximate fit: importance-weighted draws of the requested outputs and the diagnostics that judge them."""

    draws: dict[str, np.ndarray]
    """Output name -> draws (S, *shape) from the proposal."""
    weights: np.ndarray
    """Normalised Pareto-smoothed importance weights (S,)."""
    khat: float
    ess: float
    converged: bool
    grid_points: int
    message: str = ""

    def ok(self, khat_max: float = 0.7, ess_min: float = 100.0) -> bool:
        return self.converged and np.isfinite(self.khat) and self.khat <= khat_max and self.ess >= ess_min

    def prob(self, event: np.ndarray) -> float:
        """Weighted posterior probability of a boolean event computed on the draws (S,)."""
        return float(np.sum(self.weights * np.asarray(event, dtype=float)))

    def prob_se(self, event: np.ndarray) -> tuple[float, float]:
        """The weighted probability of ``event`` and its Monte Carlo standard error (self-normalised importance
        sampling: sqrt(sum w² (1[event] - p)²))."""
        e = np.asarray(event, dtype=float)
        p = float(np.sum(self.weights * e))
        return p, float(np.sqrt(np.sum(self.weights**2 * (e - p) ** 2)))


def psis(log_ratios: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised Pareto-smoothed importance weights and Pareto k̂ for log importance ratios (ArviZ's PSIS)."""
    from arviz_stats.base.array import array_stats

    lr = np.asarray(log_ratios, dtype=float)
    finite = np.isfinite(lr)
    if finite.sum() < 10:
        return np.full(lr.shape, 1.0 / lr.size), float("inf")
    # a draw outside the support (log density -inf or nan) has weight zero; PSIS needs finite values
    lr = np.where(finite, lr, lr[finite].min() - 745.0)
    lw, k = array_stats.psislw(-lr)  # psislw smooths weights proportional to exp(-x)
    lw = np.asarray(lw, float)
    w = np.exp(lw - lw.max())
    w[~finite] = 0.0
    return w / w.sum(), float(k)


def _student(rng: np.random.Generator, n: int, d: int, df: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard multivariate Student-t draws in ``d`` dimensions (a normal for ``df = inf``) and their log density.

    Heavier tails than the Gaussian keep the importance ratios bounded where the posterior has heavier tails than its
    Laplace approximation (a location with an unknown scale)."""
    from scipy.special import gammaln

    Z = rng.standard_normal((n, d))
    if not np.isfinite(df):
        return Z, -0.5 * np.sum(Z**2, axis=1) - 0.5 * d * np.log(2 * np.pi)
    Z = Z / np.sqrt(rng.chisquare(df, n) / df)[:, None]
    logz = (gammaln((df + d) / 2) - gammaln(df / 2) - 0.5 * d * np.log(df * np.pi)
            - 0.5 * (df + d) * np.log1p(np.sum(Z**2, axis=1) / df))
    return Z, logz


def _grid_coordinate(model) -> str | None:
    """The unconstrained name of the hierarchical scale to integrate over, or None."""
    names = {rv.name for rv in model.free_RVs}
    for rv in model.free_RVs:
        if rv.name.endswith("_sd") and f"{rv.name[:-3]}_z" in names and rv.ndim == 0:
            value = model.rvs_to_values[rv]
            return value.name
    return None


class _Compiled:
    def __init__(self, model, outputs: list[str]):
        import pytensor
        import pytensor.tensor as pt
        from pymc.pytensorf import compile as pm_compile
        from pytensor.graph.replace import clone_replace, vectorize_graph

        vv = list(model.value_vars)
        ip = model.initial_point()
        self.names = [v.name for v in vv]
        self.shapes = [tuple(ip[n].shape) for n in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.x0 = np.concatenate([np.ravel(ip[n]) for n in self.names]).astype(float)
        self.d = int(sum(self.sizes))
        self.slices = {}
        o = 0
        for n, k in zip(self.names, self.sizes, strict=True):
            self.slices[n] = slice(o, o + k)
            o += k
        x = pt.vector("x", dtype="float64")
        X = pt.matrix("X", dtype="float64")
        point, batch = {}, {}
        S = X.shape[0]
        for v, s, n in zip(vv, self.shapes, self.names, strict=True):
            sl = self.slices[n]
            point[v] = x[sl].reshape(s) if s else x[sl.start]
            batch[v] = X[:, sl].reshape((S, *s)) if s else X[:, sl.start]
        lp = clone_replace(model.logp(jacobian=True), replace=point)
        g = pytensor.gradient.grad(lp, x)
        H = pytensor.gradient.jacobian(g, x, vectorize=True)  # no scan: a scan costs ~1 ms per call here
        self.f_point = pm_compile([x], [lp, g, H], mode=MODE)
        self.f_point.trust_input = True
        terms = model.logp(sum=False, jacobian=True)
        outs = model.replace_rvs_by_values([model[o] for o in outputs])
        bt = vectorize_graph([*terms, *outs], replace=batch)
        lpX = sum(pt.sum(t, axis=tuple(range(1, t.ndim))) if t.ndim > 1 else t for t in bt[: len(terms)])
        self.f_batch = pm_compile([X], [lpX, *bt[len(terms):]], mode=MODE)
        self.f_batch.trust_input = True


class LaplaceIS:
    """Laplace (or nested Laplace over a hierarchical scale) + PSIS, compiled once for ``model``'s structure.

    Parameters
    ----------
    model : pm.Model
        Observed values in ``pm.Data`` containers (as :class:`bayes_sacral.inference.Refitter` needs).
    outputs : list of str
        Variables (free or deterministic) whose draws each fit returns.
    """

    def __init__(self, model, outputs: list[str]):
        from .batched import compiled_for
        from .inference import quiet_pymc

        self.model = model
        self.outputs = list(outputs)

        def build():
            with quiet_pymc():
                return _Compiled(model, self.outputs)

        # one compilation per structure: another model of it (other data or prior hyperparameters) reuses the functions
        self.c = compiled_for(model, f"laplace:{','.join(self.outputs)}", build)
        self.grid_name = _grid_coordinate(model)
        self._data = {d.name: d for d in model.data_vars}

    def set_data(self, data: dict[str, np.ndarray]) -> None:
        """New values for the model's ``pm.Data`` containers, and the compiled functions pointed at this model's values
        (they may have been built from another model of the same structure)."""
        from .batched import rebind

        for k, v in data.items():
            sv = self._data.get(k)
            if sv is None:
                raise KeyError(f"no data container {k!r} in the model")
            sv.set_value(np.asarray(v, dtype=sv.get_value(borrow=True).dtype))
        for fn in (self.c.f_point, self.c.f_batch):
            rebind(fn, self.model)

    # ------------------------------------------------------------------ optimisation
    def _newton(self, x: np.ndarray, free: np.ndarray, iters: int = 60, tol: float = 1e-7):
        """Maximise the log density over the coordinates ``free`` (boolean mask) from ``x``: damped Newton with a
        Levenberg ridge where the Hessian is not negative definite. Returns (x, lp, grad, hess, converged)."""
        f = self.c.f_point
        lp, g, H = f(x)
        lam = 0.0
        for _ in range(iters):
            gf = g[free]
            if not np.all(np.isfinite(gf)):
                return x, lp, g, H, False
            if np.max(np.abs(gf)) < tol * max(1.0, abs(lp)) or np.max(np.abs(gf)) < 1e-6:
                return x, lp, g, H, True
            A = -H[np.ix_(free, free)]
            for _try in range(30):
                try:
                    L = np.linalg.cholesky(A + lam * np.eye(A.shape[0]))
                    break
                except np.linalg.LinAlgError:
                    lam = max(2 * lam, 1e-3)
            else:
                return x, lp, g, H, False
            step = np.linalg.solve(L.T, np.linalg.solve(L, gf))
            t = 1.0
            while t > 1e-6:
                xn = x.copy()
                xn[free] += t * step
                lpn, gn, Hn = f(xn)
                if np.isfinite(lpn) and lpn >= lp - 1e-10:
                    break
                t *= 0.5
            else:
                return x, lp, g, H, False
            x, lp, g, H = xn, lpn, gn, Hn
            lam = lam * 0.3 if lam > 1e-3 else 0.0
        gf = g[free]
        return x, lp, g, H, bool(np.max(np.abs(gf)) < 1e-4)

    # ------------------------------------------------------------------ the fit
    def fit(self, data: dict[str, np.ndarray], seed, draws: int = 1000, grid_step: float = 1.0, grid_drop: float = 8.0,
            max_grid: int = 60, df: float = 8.0) -> ApproxFit:
        """Approximate posterior for ``data``: ``draws`` importance-weighted draws with their diagnostics."""
        # a trial step or a proposal draw far in the tails may overflow: such points are rejected (non-finite log
        # density) or get weight zero, so numpy's warnings about them say nothing to the user
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return self._fit(data, seed, draws, grid_step, grid_drop, max_grid, df)

    def _fit(self, data, seed, draws, grid_step, grid_drop, max_grid, df) -> ApproxFit:
        self.set_data(data)
        c = self.c
        rng = np.random.default_rng(seed)
        d = c.d
        allc = np.ones(d, dtype=bool)
        x, lp, g, H, ok = self._newton(c.x0.copy(), allc)
        if not ok:
            return self._failed("no posterior mode found")
        try:
            cov = np.linalg.inv(-H)
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return self._failed("the Hessian at the mode is not negative definite")
        if self.grid_name is None:
            L = np.linalg.cholesky(cov)
            Z, logz = _student(rng, draws, d, df)
            X = x + Z @ L.T
            return self._weigh(X, logz - np.log(np.diag(L)).sum(), 1, "")
        s = c.slices[self.grid_name].start
        rest = allc.copy()
        rest[s] = False
        width = grid_step * float(np.sqrt(cov[s, s]))
        # conditional modes along the grid, walking out from the mode in both directions until the Laplace marginal
        # has dropped by grid_drop log units
        cells = {0: self._cell(x, lp, H, rest, s)}
        for direction in (1, -1):
            xc = x.copy()
            j = 0
            while len(cells) < max_grid:
                j += direction
                prev = cells[j - direction]
                xc = prev["x"].copy()
                # start from the previous conditional mode moved along its slope: one or two Newton steps remain
                xc[rest] += direction * width * prev["slope"]
                xc[s] = x[s] + j * width
                xc, lpj, _g, Hj, okj = self._newton(xc, rest, iters=40)
                if not okj:
                    return self._failed(f"no conditional mode at grid point {j}")
                cells[j] = self._cell(xc, lpj, Hj, rest, s)
                if cells[j]["logm"] < cells[0]["logm"] - grid_drop:
                    break
        js = sorted(cells)
        logm = np.array([cells[j]["logm"] for j in js])
        pm_ = np.exp(logm - logm.max())
        pm_ /= pm_.sum()
        which = rng.choice(len(js), size=draws, p=pm_)
        u = rng.random(draws) - 0.5
        Z, logz = _student(rng, draws, d - 1, df)
        X = np.empty((draws, d))
        logq = np.empty(draws)
        for i, j in enumerate(js):
            idx = np.where(which == i)[0]
            if idx.size == 0:
                continue
            cj = cells[j]
            theta = cj["x"][s] + u[idx] * width
            mean = cj["x"][rest][None, :] + (theta - cj["x"][s])[:, None] * cj["slope"][None, :]
            X[np.ix_(idx, np.where(rest)[0])] = mean + Z[idx] @ cj["L"].T
            X[idx, s] = theta
            logq[idx] = np.log(pm_[i] / width) + logz[idx] - cj["logdetL"]
        return self._weigh(X, logq, len(js), "")

    @staticmethod
    def _cell(x, lp, H, rest, s) -> dict:
        A = -H[np.ix_(rest, rest)]
        cov = np.linalg.inv(A)
        L = np.linalg.cholesky(cov)
        logdetL = float(np.log(np.diag(L)).sum())
        slope = cov @ H[rest, s]  # d(conditional mode)/d(theta) = A^-1 H_{rest,s}
        return {"x": x.copy(), "L": L, "logdetL": logdetL, "slope": slope, "logm": float(lp) + logdetL}

    def _weigh(self, X: np.ndarray, logq: np.ndarray, grid_points: int, message: str) -> ApproxFit:
        res = self.c.f_batch(np.ascontiguousarray(X))
        lps = np.asarray(res[0], float)
        lps = np.where(np.isnan(lps), -np.inf, lps)
        w, k = psis(lps - logq)
        ess = float(1.0 / np.sum(w**2))
        draws = {n: np.asarray(v) for n, v in zip(self.outputs, res[1:], strict=True)}
        return ApproxFit(draws, w, k, ess, True, grid_points, message)

    def _failed(self, why: str) -> ApproxFit:
        return ApproxFit({}, np.zeros(0), float("inf"), 0.0, False, 0, why)
