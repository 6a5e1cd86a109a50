/**
 * Small dense linear algebra for the analyses (docs/method.md, "Analyses"): a symmetric eigensolver for PCA and
 * least squares for the regression on component scores. Matrices are a handful of columns wide, so
 * clarity and accuracy win over speed. Pure math, no I/O, no Node built-ins.
 */

export interface Eigen {
  /** Eigenvalues, largest first. */
  values: number[];
  /** vectors[k] is the unit eigenvector of values[k] (row layout, like sklearn's `components_`). */
  vectors: number[][];
}

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations, which is accurate to machine
 * precision for small matrices and needs no library.
 *
 * Sign convention: each eigenvector is flipped so that its entry of largest magnitude is positive
 * (first such entry on ties), which makes the result deterministic. numpy/LAPACK return arbitrary
 * signs; scikit-learn ≥ 1.5 applies the same largest-entry rule to PCA components, but older
 * versions used a different rule, so compare eigenvectors up to sign.
 */
export function symmetricEigen(matrix: readonly (readonly number[])[]): Eigen {
  const n = matrix.length;
  const a = matrix.map((row, i) => {
    if (row.length !== n) throw new Error(`symmetricEigen: row ${i} has ${row.length} entries, expected ${n}`);
    return row.slice();
  });
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const x = a[i]![j]!;
      const y = a[j]![i]!;
      if (!Number.isFinite(x) || !Number.isFinite(y)) throw new Error('symmetricEigen: non-finite entry');
      if (Math.abs(x - y) > 1e-12 * Math.max(1, Math.abs(x), Math.abs(y))) {
        throw new Error(`symmetricEigen: matrix is not symmetric at (${i}, ${j})`);
      }
    }
  }
  const v = identity(n);
  let converged = false;
  for (let sweep = 0; sweep < 100 && !converged; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += Math.abs(a[p]![q]!);
    if (off === 0) {
      converged = true;
      break;
    }
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p]![q]!;
        if (apq === 0) continue;
        const app = a[p]![p]!;
        const aqq = a[q]![q]!;
        // After a few sweeps an element below the diagonal's rounding level cannot change anything:
        // zero it so the iteration terminates with an exactly diagonal matrix.
        if (sweep > 3 && Math.abs(app) + 100 * Math.abs(apq) === Math.abs(app)) {
          if (Math.abs(aqq) + 100 * Math.abs(apq) === Math.abs(aqq)) {
            a[p]![q] = 0;
            a[q]![p] = 0;
            continue;
          }
        }
        rotate(a, v, p, q);
      }
    }
  }
  if (!converged) throw new Error('symmetricEigen: Jacobi iteration did not converge');
  const order = a.map((_, i) => i).sort((i, j) => a[j]![j]! - a[i]![i]! || i - j);
  const values = order.map((i) => a[i]![i]!);
  const vectors = order.map((k) => {
    const vec = v.map((row) => row[k]!);
    let big = 0;
    for (let i = 1; i < n; i++) if (Math.abs(vec[i]!) > Math.abs(vec[big]!)) big = i;
    return vec[big]! < 0 ? vec.map((x) => -x) : vec;
  });
  return { values, vectors };
}

/** One Jacobi rotation in the (p, q) plane that zeroes a[p][q]; accumulates it into v's columns. */
function rotate(a: number[][], v: number[][], p: number, q: number): void {
  const n = a.length;
  const apq = a[p]![q]!;
  const theta = (a[q]![q]! - a[p]![p]!) / (2 * apq);
  // Smaller root of t² + 2θt − 1 = 0, so the rotation angle stays ≤ π/4 (stable).
  const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
  const c = 1 / Math.sqrt(t * t + 1);
  const s = t * c;
  for (let k = 0; k < n; k++) {
    if (k === p || k === q) continue;
    const akp = a[k]![p]!;
    const akq = a[k]![q]!;
    const newKp = c * akp - s * akq;
    const newKq = s * akp + c * akq;
    a[k]![p] = newKp;
    a[p]![k] = newKp;
    a[k]![q] = newKq;
    a[q]![k] = newKq;
  }
  a[p]![p] = a[p]![p]! - t * apq;
  a[q]![q] = a[q]![q]! + t * apq;
  a[p]![q] = 0;
  a[q]![p] = 0;
  for (let k = 0; k < n; k++) {
    const vkp = v[k]![p]!;
    const vkq = v[k]![q]!;
    v[k]![p] = c * vkp - s * vkq;
    v[k]![q] = s * vkp + c * vkq;
  }
}

function identity(n: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
}

export interface LeastSquares {
  coefficients: number[];
  /** Columns dropped as linearly dependent on earlier ones (their coefficient is 0). */
  dependent: number[];
}

/**
 * Least squares min ‖Xβ − y‖ by a QR factorisation built with modified Gram–Schmidt, orthogonalising
 * each column twice ("twice is enough") so the factors stay accurate to machine precision. A column
 * that is (numerically) a combination of earlier ones gets coefficient 0: the fitted values are still
 * the least-squares fit, though the coefficients then differ from numpy's minimum-norm solution.
 */
export function leastSquares(x: readonly (readonly number[])[], y: readonly number[]): LeastSquares {
  const n = x.length;
  if (n === 0 || n !== y.length) throw new Error(`leastSquares: ${n} rows but ${y.length} targets`);
  const width = x[0]!.length;
  const qs: number[][] = [];
  const kept: number[] = [];
  const dependent: number[] = [];
  // r[k] holds row k of R over the kept columns (upper triangular).
  const r: number[][] = [];
  // Dependence is judged against the largest column, as LAPACK's rcond is judged against the largest
  // singular value: a column of pure rounding noise (a zero-variance component's scores) is dropped.
  let scale = 0;
  for (let j = 0; j < width; j++) scale = Math.max(scale, norm(x.map((row) => row[j] ?? 0)));
  for (let j = 0; j < width; j++) {
    const col = x.map((row, i) => {
      if (row.length !== width) throw new Error(`leastSquares: row ${i} has ${row.length} columns, expected ${width}`);
      if (!Number.isFinite(row[j])) throw new Error(`leastSquares: non-finite value at (${i}, ${j})`);
      return row[j]!;
    });
    const coeffs = new Array<number>(qs.length).fill(0);
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < qs.length; k++) {
        const proj = dot(qs[k]!, col);
        coeffs[k]! += proj;
        for (let i = 0; i < n; i++) col[i]! -= proj * qs[k]![i]!;
      }
    }
    const rest = norm(col);
    if (rest === 0 || rest <= 1e-10 * scale) {
      dependent.push(j);
      continue;
    }
    for (let k = 0; k < qs.length; k++) r[k]!.push(coeffs[k]!);
    r.push(new Array<number>(qs.length).fill(0).concat([rest]));
    qs.push(col.map((c) => c / rest));
    kept.push(j);
  }
  // Solve R β = Qᵀ y by back substitution.
  const qty = qs.map((q) => dot(q, y));
  const m = kept.length;
  const beta = new Array<number>(m).fill(0);
  for (let k = m - 1; k >= 0; k--) {
    let s = qty[k]!;
    for (let l = k + 1; l < m; l++) s -= r[k]![l]! * beta[l]!;
    beta[k] = s / r[k]![k]!;
  }
  const coefficients = new Array<number>(width).fill(0);
  kept.forEach((j, k) => (coefficients[j] = beta[k]!));
  return { coefficients, dependent };
}

function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function norm(a: readonly number[]): number {
  return Math.sqrt(dot(a, a));
}

/** Matrix product A·B. */
export function matMul(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): number[][] {
  const inner = b.length;
  const cols = inner === 0 ? 0 : b[0]!.length;
  return a.map((row) => {
    if (row.length !== inner) throw new Error(`matMul: inner dimensions differ (${row.length} vs ${inner})`);
    const out = new Array<number>(cols).fill(0);
    for (let k = 0; k < inner; k++) {
      const aik = row[k]!;
      const bk = b[k]!;
      for (let j = 0; j < cols; j++) out[j]! += aik * bk[j]!;
    }
    return out;
  });
}

/** Transpose. */
export function transpose(a: readonly (readonly number[])[]): number[][] {
  if (a.length === 0) return [];
  return a[0]!.map((_, j) => a.map((row) => row[j]!));
}
