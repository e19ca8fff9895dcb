import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { integer, yesNo } from "../src/cli/flag-values.js";

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
});
