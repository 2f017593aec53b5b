/** mulberry32 from the raw 32-bit state `seed`: small, fast, the same stream on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded generator (mulberry32 from a scrambled seed) with the helpers the analyses need. */
export class SeededRandom {
  private readonly draw: () => number;

  constructor(seed: number) {
    this.draw = mulberry32((seed >>> 0) ^ 0x9e3779b9);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.draw();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  /** A seed for a sub-stream, so independent parts (one per class pair) do not depend on each other's draws. */
  static derive(seed: number, ...parts: number[]): number {
    let h = seed >>> 0;
    for (const p of parts) h = Math.imul(h ^ (p + 0x7f4a7c15), 0x85ebca6b) >>> 0;
    return (h ^ (h >>> 13)) >>> 0;
  }
}
