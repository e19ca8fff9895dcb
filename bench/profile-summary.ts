/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): self time by function and by file, and total
 * (inclusive) time of chosen functions. `node dist/bench/profile-summary.js FILE [TOP]`.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time in microseconds by "function file:line", and by file, sorted largest first. */
export function summarize(profile: Profile): {
  totalUs: number;
  byFunction: [string, number][];
  byFile: [string, number][];
  inclusive: Map<string, number>;
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    totalUs += dt;
    self.set(id, (self.get(id) ?? 0) + dt);
  });
  const name = (n: ProfileNode) => {
    const file = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|dist)\//, "$1/");
    return `${n.callFrame.functionName || "(anonymous)"} ${file}:${n.callFrame.lineNumber + 1}`;
  };
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id) as ProfileNode;
    byFunction.set(name(n), (byFunction.get(name(n)) ?? 0) + us);
    const file =
      n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules\/[^/]+(\/[^/]+)?|dist\/.*)$/, "$1") ||
      n.callFrame.functionName;
    byFile.set(file, (byFile.get(file) ?? 0) + us);
    // Inclusive time: every distinct function on the stack gets the sample once.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = name(byId.get(at) as ProfileNode);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { totalUs, byFunction: sorted(byFunction), byFile: sorted(byFile), inclusive };
}

if (process.argv[1]?.endsWith("profile-summary.js")) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: profile-summary FILE.cpuprofile [TOP]");
  const top = Number(process.argv[3] ?? 25);
  const s = summarize(JSON.parse(readFileSync(file, "utf8")) as Profile);
  const pct = (us: number) => `${((100 * us) / s.totalUs).toFixed(1).padStart(5)}%`;
  process.stdout.write(
    `total ${(s.totalUs / 1e6).toFixed(2)} s sampled\n\nself time by function:\n`,
  );
  for (const [k, us] of s.byFunction.slice(0, top)) process.stdout.write(`${pct(us)}  ${k}\n`);
  process.stdout.write("\nself time by file:\n");
  for (const [k, us] of s.byFile.slice(0, top)) process.stdout.write(`${pct(us)}  ${k}\n`);
  process.stdout.write("\ninclusive time (top):\n");
  const inc = [...s.inclusive].sort((a, b) => b[1] - a[1]).slice(0, top * 2);
  for (const [k, us] of inc) process.stdout.write(`${pct(us)}  ${k}\n`);
}
