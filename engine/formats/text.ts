/** Telling a renamed text file (a README, a JSON, an HTML error page) from a binary model. */

/** Whether the bytes look like text rather than a binary protobuf (a renamed .txt, a JSON, an HTML error page). */
export function looksLikeText(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 4096);
  if (n === 0) return false;
  let printable = 0;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 0xc2) printable++;
  }
  return printable / n > 0.95;
}
