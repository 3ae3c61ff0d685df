/** "Did you mean …?": the valid choices nearest a mistyped name, by edit distance. */

/** Edit distance counting a swap of two neighbours as one edit, as typos are (`nast` -> `nats`: 1). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j], rows[i - 2][j - 2] + 1);
    }
    rows.push(row);
  }
  return rows[a.length][b.length];
}

/**
 * Up to `max` candidates close to `word`, nearest first, case ignored: within a third of its length
 * (at least one edit), or starting with it (`snap` -> `snapshot`), so a typo or a short form is
 * caught and an unrelated name is not offered.
 */
export function closestNames(word: string, candidates: Iterable<string>, max = 3): string[] {
  const typed = word.toLowerCase();
  const limit = Math.max(1, Math.floor(typed.length / 3));
  const scored: { candidate: string; distance: number }[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate === word) continue;
    const lower = candidate.toLowerCase();
    const distance = typed.length >= 3 && lower.startsWith(typed) ? 1 : editDistance(typed, lower);
    if (distance <= limit) scored.push({ candidate, distance });
  }
  return scored.sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate)).slice(0, max).map((s) => s.candidate);
}

/** `; did you mean "nats"?` (or `"a" or "b"`), or '' when nothing is close; `quote` formats a name. */
export function didYouMean(word: string, candidates: Iterable<string>, quote: (name: string) => string = (name) => `"${name}"`): string {
  const close = closestNames(word, candidates);
  return close.length === 0 ? '' : `; did you mean ${close.map(quote).join(' or ')}?`;
}
