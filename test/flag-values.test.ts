import { Command, InvalidArgumentError, Option } from "commander";
import { describe, expect, it } from "vitest";
import { integer, list, yesNo } from "../src/cli/flag-values.js";

describe("flag values", () => {
  it("yes/no accepts exactly 1/0, true/false, yes/no in any case", () => {
    for (const v of ["1", "true", "TRUE", "yes", "Yes", " yes "]) expect(yesNo(v), v).toBe(true);
    for (const v of ["0", "false", "False", "no", "NO"]) expect(yesNo(v), v).toBe(false);
    for (const v of ["", "2", "on", "off", "y", "n", "maybe", "truee"]) {
      expect(() => yesNo(v), v).toThrow(InvalidArgumentError);
    }
  });

  it("integer accepts whole numbers only", () => {
    expect(integer("0")).toBe(0);
    expect(integer("8013")).toBe(8013);
    for (const v of ["", " ", "-1", "1.5", "abc", "1e400"]) {
      expect(() => integer(v), v).toThrow(InvalidArgumentError);
    }
  });

  it("a list flag may be repeated, comma-separated, or both, in the order given", () => {
    // As `govd serve --central` is declared: each occurrence adds its addresses.
    const parse = (...args: string[]) =>
      new Command()
        .exitOverride()
        .addOption(new Option("--central <address>").argParser(list))
        .parse(["node", "govd", ...args])
        .opts().central as string[] | undefined;
    expect(parse("--central", "a:1")).toEqual(["a:1"]);
    expect(parse("--central", "a:1, b:2,", "--central", "https://c:3")).toEqual([
      "a:1",
      "b:2",
      "https://c:3",
    ]);
    expect(parse()).toBeUndefined();
  });
});
