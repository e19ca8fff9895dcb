/**
 * Builds dist/ once before the suite, so tests can start the program the way the README does,
 * and the engine library's dist/, so a test can import it by its package name.
 */
import { execFileSync } from "node:child_process";

export default function setup(): void {
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  execFileSync("npx", ["tsc", "-p", "packages/engine/tsconfig.json"], { stdio: "inherit" });
}
