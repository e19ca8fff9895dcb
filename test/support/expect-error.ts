/** Asserts a call fails with a ConnectError of a given code and message. */
import { type Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** Awaits `p`, expecting a ConnectError with `code` whose message matches `text`. */
export async function rejects(
  p: Promise<unknown>,
  code: Code,
  text: RegExp,
): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as ConnectError).code).toBe(code);
  expect((err as ConnectError).rawMessage).toMatch(text);
  return err as ConnectError;
}
