/**
 * Nelder–Mead simplex minimisation with the coefficients, start simplex and stop rule of
 * scipy.optimize.fmin (reflection 1, expansion 2, contraction 0.5, shrink 0.5; the start simplex
 * moves each coordinate by 5%, or to 0.00025 when it is 0; stop when every vertex is within xatol
 * of the best one and every value within fatol of the best value, or after 200·n iterations or
 * function calls). MM-BD's null fit is scipy's gamma.fit, which minimises with fmin: the same
 * steps give the same fit.
 */

export interface NelderMeadOptions {
  xatol?: number;
  fatol?: number;
  maxIterations?: number;
  maxEvaluations?: number;
}

export interface NelderMeadResult {
  x: number[];
  value: number;
  iterations: number;
  evaluations: number;
  /** False when it stopped on the iteration or call limit rather than the tolerances. */
  converged: boolean;
}

export function nelderMead(f: (x: number[]) => number, x0: readonly number[], options: NelderMeadOptions = {}): NelderMeadResult {
  const n = x0.length;
  const xatol = options.xatol ?? 1e-4, fatol = options.fatol ?? 1e-4;
  const maxIterations = options.maxIterations ?? 200 * n, maxEvaluations = options.maxEvaluations ?? 200 * n;
  const rho = 1, chi = 2, psi = 0.5, sigma = 0.5;
  let evaluations = 0;
  const call = (x: number[]) => {
    evaluations++;
    return f(x);
  };
  let sim: number[][] = [[...x0]];
  for (let k = 0; k < n; k++) {
    const y = [...x0];
    y[k] = y[k] !== 0 ? 1.05 * y[k] : 0.00025;
    sim.push(y);
  }
  let fsim = sim.map((x) => (evaluations < maxEvaluations ? call(x) : Infinity));
  const sortSimplex = () => {
    const order = fsim.map((v, i) => i).sort((a, b) => fsim[a] - fsim[b] || a - b);
    sim = order.map((i) => sim[i]);
    fsim = order.map((i) => fsim[i]);
  };
  sortSimplex();
  const combine = (a: number, xa: number[], b: number, xb: number[]) => xa.map((v, i) => a * v + b * xb[i]);
  let iterations = 1;
  let converged = false;
  while (evaluations < maxEvaluations && iterations < maxIterations) {
    let spread = 0, fspread = 0;
    for (let j = 1; j <= n; j++) {
      fspread = Math.max(fspread, Math.abs(fsim[0] - fsim[j]));
      for (let i = 0; i < n; i++) spread = Math.max(spread, Math.abs(sim[j][i] - sim[0][i]));
    }
    if (spread <= xatol && fspread <= fatol) {
      converged = true;
      break;
    }
    const xbar = new Array<number>(n).fill(0);
    for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) xbar[i] += sim[j][i];
    for (let i = 0; i < n; i++) xbar[i] /= n;
    const worst = sim[n];
    const xr = combine(1 + rho, xbar, -rho, worst);
    const fxr = call(xr);
    if (fxr < fsim[0]) {
      const xe = combine(1 + rho * chi, xbar, -rho * chi, worst);
      const fxe = evaluations < maxEvaluations ? call(xe) : Infinity;
      if (fxe < fxr) [sim[n], fsim[n]] = [xe, fxe];
      else [sim[n], fsim[n]] = [xr, fxr];
    } else if (fxr < fsim[n - 1]) {
      [sim[n], fsim[n]] = [xr, fxr];
    } else {
      let shrink = false;
      if (fxr < fsim[n]) {
        const xc = combine(1 + psi * rho, xbar, -psi * rho, worst);
        const fxc = evaluations < maxEvaluations ? call(xc) : Infinity;
        if (fxc <= fxr) [sim[n], fsim[n]] = [xc, fxc];
        else shrink = true;
      } else {
        const xcc = combine(1 - psi, xbar, psi, worst);
        const fxcc = evaluations < maxEvaluations ? call(xcc) : Infinity;
        if (fxcc < fsim[n]) [sim[n], fsim[n]] = [xcc, fxcc];
        else shrink = true;
      }
      if (shrink) {
        for (let j = 1; j <= n && evaluations < maxEvaluations; j++) {
          sim[j] = sim[0].map((v, i) => v + sigma * (sim[j][i] - v));
          fsim[j] = call(sim[j]);
        }
      }
    }
    iterations++;
    sortSimplex();
  }
  return { x: sim[0], value: Math.min(...fsim), iterations, evaluations, converged };
}
