/**
 * The pure rules of the TLS layer: plaintext only on loopback (both when listening and when a
 * sidecar connects to central), the forms of `--central`, the sidecar identity of a
 * certificate, and assertSidecarIdentity's refusals.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { listenerTls } from "../src/server/tls-credentials.js";
import {
  assertCentralAddressAllowed,
  parseCentralAddress,
} from "../src/sync/tls/central-address.js";
import { clientCredentials } from "../src/sync/tls/client-credentials.js";
import {
  assertPlaintextAllowed,
  isLoopback,
  plaintextRefusal,
} from "../src/sync/tls/plaintext-rule.js";
import { assertSidecarIdentity, sidecarIdOfCertificate } from "../src/sync/tls/sidecar-identity.js";

function refusal(f: () => void): ConnectError {
  try {
    f();
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("plaintext rule", () => {
  it("allows plaintext on loopback and refuses it elsewhere unless --allow-remote, on both sides", () => {
    for (const host of ["127.0.0.1", "127.3.2.1", "localhost", "::1", "[::1]"]) {
      expect(isLoopback(host)).toBe(true);
      expect(plaintextRefusal(host, { role: "listen", allowRemote: false })).toBeUndefined();
      expect(plaintextRefusal(host, { role: "connect", allowRemote: false })).toBeUndefined();
    }
    for (const host of ["0.0.0.0", "10.0.0.5", "::", "central.internal", "128.0.0.1"]) {
      expect(isLoopback(host)).toBe(false);
      expect(plaintextRefusal(host, { role: "listen", allowRemote: false })).toMatch(
        new RegExp(`refusing to listen on ${host} in plaintext.*--allow-remote`),
      );
      expect(plaintextRefusal(host, { role: "connect", allowRemote: false })).toMatch(
        /refusing to connect to central at .* in plaintext.*https:\/\/.*--allow-remote/,
      );
      expect(plaintextRefusal(host, { role: "listen", allowRemote: true })).toBeUndefined();
      expect(plaintextRefusal(host, { role: "connect", allowRemote: true })).toBeUndefined();
    }
  });

  it("names the TLS flags of a listener that has them, and throws the refusal as an Error", () => {
    const o = { role: "listen", allowRemote: false, tlsFlags: "--tls-cert and --tls-key" } as const;
    expect(() => assertPlaintextAllowed("0.0.0.0", o)).toThrow(
      /serve TLS there \(--tls-cert and --tls-key\), or pass --allow-remote/,
    );
    expect(() => assertPlaintextAllowed("127.0.0.1", o)).not.toThrow();
  });
});

describe("central's listeners", () => {
  it("are plaintext only on loopback or with --allow-remote, and refuse TLS flags that miss a part", () => {
    expect(listenerTls({ hosts: ["127.0.0.1", "::1"], allowRemote: false })).toBeUndefined();
    expect(() => listenerTls({ hosts: ["127.0.0.1", "0.0.0.0"], allowRemote: false })).toThrow(
      /refusing to listen on 0\.0\.0\.0 in plaintext.*serve TLS there \(--tls-cert and --tls-key\)/,
    );
    expect(listenerTls({ hosts: ["0.0.0.0"], allowRemote: true })).toBeUndefined();
    expect(() =>
      listenerTls({ hosts: ["127.0.0.1"], allowRemote: false, clientCaFile: "ca.crt" }),
    ).toThrow(
      /--client-ca ca\.crt .* also give central's own certificate with --tls-cert and --tls-key/,
    );
    expect(() =>
      listenerTls({ hosts: ["127.0.0.1"], allowRemote: false, keyFile: "tls.key" }),
    ).toThrow(/--tls-key tls\.key needs --tls-cert/);
  });
});

describe("--central addresses", () => {
  it("reads host:port as plaintext and https://host:port as TLS, IPv6 in brackets", () => {
    expect(parseCentralAddress("127.0.0.1:9013")).toEqual({
      tls: false,
      host: "127.0.0.1",
      port: 9013,
      target: "127.0.0.1:9013",
      loopback: true,
    });
    expect(parseCentralAddress("https://central.internal:9013/")).toEqual({
      tls: true,
      host: "central.internal",
      port: 9013,
      target: "central.internal:9013",
      loopback: false,
    });
    expect(parseCentralAddress("http://[::1]:9013")).toMatchObject({
      tls: false,
      host: "::1",
      target: "[::1]:9013",
      loopback: true,
    });
    expect(parseCentralAddress("HTTPS://[fd00::7]:443").target).toBe("[fd00::7]:443");
  });

  it("refuses what it cannot read, naming the flag and the accepted forms", () => {
    for (const [addr, why] of [
      ["central.internal", /needs a host and a port/],
      ["https://central.internal", /needs a host and a port/],
      ["grpc://central:9013", /scheme grpc:\/\/ is not served/],
      ["https://central:9013/sync", /has a path/],
      ["central:70000", /port 70000 is outside/],
      ["[central]:9013", /is not an IPv6 address/],
      ["::1:9013", /needs a host and a port/],
    ] as const) {
      expect(() => parseCentralAddress(addr)).toThrow(why);
      expect(() => parseCentralAddress(addr)).toThrow(
        /--central .* is not a central address.*https:\/\/host:port/,
      );
    }
  });

  it("refuses plaintext to a non-loopback central, in the pure rule and in clientCredentials", () => {
    const remote = parseCentralAddress("10.0.0.5:9013");
    expect(() => assertCentralAddressAllowed(remote, { allowRemote: false })).toThrow(
      /refusing to connect to central at 10\.0\.0\.5 in plaintext.*https:\/\/10\.0\.0\.5:PORT/,
    );
    expect(() => assertCentralAddressAllowed(remote, { allowRemote: true })).not.toThrow();
    expect(() =>
      assertCentralAddressAllowed(parseCentralAddress("https://10.0.0.5:9013"), {
        allowRemote: false,
      }),
    ).not.toThrow();
    expect(() =>
      clientCredentials({ central: "central.internal:9013", allowRemote: false }),
    ).toThrow(/refusing to connect to central at central\.internal in plaintext/);
    const local = clientCredentials({ central: "127.0.0.1:9013", allowRemote: false });
    expect(local.target).toBe("127.0.0.1:9013");
    expect(local.files).toBeUndefined();
    local.close();
  });

  it("refuses TLS files for a plaintext address, and a certificate without its key", () => {
    expect(() =>
      clientCredentials({
        central: "127.0.0.1:9013",
        allowRemote: false,
        centralCaFile: "/ca.crt",
      }),
    ).toThrow(
      /--central-ca is for TLS, but --central 127\.0\.0\.1:9013 is plaintext: write it as https:\/\/127\.0\.0\.1:9013/,
    );
    expect(() =>
      clientCredentials({
        central: "https://127.0.0.1:9013",
        allowRemote: false,
        certFile: "/tls.crt",
      }),
    ).toThrow(/--tls-cert \/tls\.crt needs --tls-key/);
    expect(() =>
      clientCredentials({
        central: "https://127.0.0.1:9013",
        allowRemote: false,
        centralCaFile: "/nonexistent/ca.crt",
      }),
    ).toThrow(/cannot read --central-ca \/nonexistent\/ca\.crt/);
  });
});

describe("sidecar identity", () => {
  it("is the one govd-sidecar:// URI of the certificate's subjectAltName", () => {
    expect(sidecarIdOfCertificate({ subjectaltname: "URI:govd-sidecar://wholesale-1" })).toBe(
      "wholesale-1",
    );
    expect(
      sidecarIdOfCertificate({
        subjectaltname: "DNS:pod-7, URI:spiffe://x/y, URI:govd-sidecar://capital-1",
      }),
    ).toBe("capital-1");
    for (const san of [
      undefined,
      "",
      "DNS:wholesale-1",
      "URI:govd-sidecar://a, URI:govd-sidecar://b",
      "URI:govd-sidecar://",
      "URI:govd-sidecar://has/slash",
      'URI:"govd-sidecar://a, DNS:b"',
    ]) {
      expect(
        sidecarIdOfCertificate(san === undefined ? undefined : { subjectaltname: san }),
      ).toBeUndefined();
    }
    expect(sidecarIdOfCertificate(undefined)).toBeUndefined();
  });

  it("assertSidecarIdentity refuses another id, or no identity under mTLS, with PERMISSION_DENIED", () => {
    expect(() => assertSidecarIdentity("wholesale-1", "wholesale-1", { mtls: true })).not.toThrow();
    const other = refusal(() => assertSidecarIdentity("wholesale-1", "capital-1", { mtls: true }));
    expect(other.code).toBe(Code.PermissionDenied);
    expect(other.rawMessage).toMatch(
      /sidecar "capital-1" is refused: .* for sidecar "wholesale-1" .*--sidecar-id wholesale-1, or give it a certificate for govd-sidecar:\/\/capital-1/,
    );
    const none = refusal(() => assertSidecarIdentity(undefined, "capital-1", { mtls: true }));
    expect(none.code).toBe(Code.PermissionDenied);
    expect(none.rawMessage).toMatch(
      /requires a client certificate from its --client-ca .*govd-sidecar:\/\/capital-1/,
    );
    // Without mTLS there is no identity to hold a sidecar to.
    expect(() => assertSidecarIdentity(undefined, "capital-1", { mtls: false })).not.toThrow();
  });
});
