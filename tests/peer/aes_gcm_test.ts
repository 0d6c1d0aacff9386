import assert from "node:assert/strict";
import {
  type AesGcmEngine,
  aesGcmKey,
  IMB_AVX512_T2_FEATURES,
  ipsecMbAvailable,
  ipsecMbBuffers,
  ipsecMbHasVaes,
  ipsecMbVersionSupported,
  opensslAvailable,
  TAG_BYTES,
} from "../../src/peer/aes_gcm.ts";
import { encodeFrame, FrameDecoder, FrameType } from "../../src/peer/frame.ts";

async function material() {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, raw };
}
const hasOpenSsl = opensslAvailable();
const ipsecMb = ipsecMbAvailable();
/** Set by scripts/test, which installs libIPSec_MB: the FFI engines must be tested, not skipped. */
const REQUIRE_FFI_ENGINES = Deno.env.get("MAILPEER_REQUIRE_FFI_AES") === "1";

const ENGINES: AesGcmEngine[] = [
  "webcrypto",
  "node",
  ...(hasOpenSsl ? ["openssl" as const] : []),
  ...(ipsecMb ? ["ipsec-mb" as const] : []),
];
const FFI_ENGINES = ENGINES.filter((e) => e === "openssl" || e === "ipsec-mb");

/** The CPU flags the kernel reports that libIPSec_MB's VAES AVX-512 code needs. */
const VAES_CPU_FLAGS = [
  "sse4_2",
  "cmov",
  "aes",
  "pclmulqdq",
  "avx",
  "avx2",
  "bmi2",
  "avx512f",
  "avx512dq",
  "avx512cd",
  "avx512bw",
  "avx512vl",
  "vaes",
  "vpclmulqdq",
  "gfni",
  "avx512ifma",
  "sha_ni",
];

Deno.test({
  name:
    "the test command tests OpenSSL, and libIPSec_MB exactly where the kernel says the CPU runs its code",
  ignore: !REQUIRE_FFI_ENGINES,
  fn: async () => {
    assert.ok(hasOpenSsl, "OpenSSL 3's libcrypto loads");
    // Deno reads /proc/cpuinfo only with every permission; grep may.
    const grep = new Deno.Command("grep", { args: ["-m1", "^flags", "/proc/cpuinfo"] });
    const cpuinfo = new TextDecoder().decode((await grep.output()).stdout);
    const flags = new Set(/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? []);
    const vaes = Deno.build.arch === "x86_64" && VAES_CPU_FLAGS.every((f) => flags.has(f));
    assert.equal(
      ipsecMb,
      vaes,
      `libIPSec_MB ${ipsecMb ? "is" : "is not"} used; CPU flags say ${vaes}`,
    );
  },
});
const SIZES = [0, 1, 15, 16, 17, 4096, 65_536, 262_117];

function filled(size: number): Uint8Array {
  const plain = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
  const full = new Uint8Array(size);
  for (let at = 0; at < size; at += plain.length || 1) full.set(plain.subarray(0, size - at), at);
  return full;
}

Deno.test(`every AES-GCM implementation (${ENGINES.join(", ")}) seals the same bytes and opens the others'`, async () => {
  const m = await material();
  const keys = ENGINES.map((implementation) => aesGcmKey(m, { implementation }));
  assert.deepEqual(keys.map((k) => k.implementation), ENGINES);
  const aad = Uint8Array.of(1, 4, 0, 0, 0, 0, 0, 0, 0, 7);
  for (const size of [...SIZES, ...SIZES]) { // a new nonce each time, on the same keys
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const full = filled(size);
    const sealed = [];
    for (const key of keys) {
      const out = new Uint8Array(size + 1 + TAG_BYTES);
      await key.seal(nonce, aad, [Uint8Array.of(1), full], out);
      sealed.push(out);
    }
    for (const [i, out] of sealed.entries()) {
      assert.deepEqual(out, sealed[0], `${keys[i]!.implementation} sealed ${size} bytes alike`);
    }
    for (const opener of keys) {
      const what = `${opener.implementation}, ${size} bytes`;
      const opened = await opener.open(nonce, aad, sealed[0]!);
      assert.ok(opened instanceof Uint8Array && opened.constructor === Uint8Array, what);
      assert.deepEqual(opened.subarray(1), full, what);
      const into = new Uint8Array(size + 9).fill(0xee);
      const view = await opener.open(nonce, aad, sealed[0]!, { into });
      assert.equal(view?.buffer, into.buffer, `${what}: into the given buffer`);
      assert.equal(view?.length, size + 1);
      assert.deepEqual(into.subarray(1, size + 1), full, `${what}: into`);
      assert.ok(into.subarray(size + 1).every((x) => x === 0xee), `${what}: nothing past it`);
      const head = new Uint8Array(1);
      const rest = new Uint8Array(size).fill(0xee);
      const data = await opener.open(nonce, aad, sealed[0]!, { into: rest, head });
      assert.equal(data?.buffer, rest.buffer, `${what}: the data into the given buffer`);
      assert.deepEqual(
        [head[0], data],
        [1, full],
        `${what}: the flag byte apart, the data from [0]`,
      );
      const inPlace = sealed[0]!.slice();
      assert.deepEqual(
        (await opener.open(nonce, aad, inPlace, { inPlace: true }))?.subarray(1),
        full,
      );
    }
  }
});

for (const implementation of ENGINES) {
  Deno.test(`${implementation} AES-GCM rejects any altered byte, wrong nonce or wrong additional data`, async () => {
    const m = await material();
    const key = aesGcmKey(m, { implementation });
    const other = aesGcmKey(m, { implementation: "webcrypto" });
    const nonce = new Uint8Array(12);
    const aad = Uint8Array.of(9);
    const sealed = new Uint8Array(40 + TAG_BYTES);
    await other.seal(nonce, aad, [new Uint8Array(40).fill(7)], sealed);
    for (let at = 0; at < sealed.length; at++) {
      const altered = sealed.slice();
      altered[at]! ^= 1;
      assert.equal(await key.open(nonce, aad, altered), null, `byte ${at}`);
      assert.equal(await key.open(nonce, aad, altered, { inPlace: true }), null, `in place, ${at}`);
      const into = new Uint8Array(40).fill(0xee);
      assert.equal(await key.open(nonce, aad, altered, { into }), null, `into, ${at}`);
      assert.ok(into.every((x) => x === 0 || x === 0xee), "no unauthenticated plaintext");
    }
    for (let at = 0; at < 12; at++) {
      const wrong = nonce.slice();
      wrong[at]! ^= 0x80;
      assert.equal(await key.open(wrong, aad, sealed), null, `nonce byte ${at}`);
    }
    assert.equal(await key.open(nonce, Uint8Array.of(8), sealed), null, "other aad");
    assert.equal(await key.open(nonce, new Uint8Array(0), sealed), null, "no aad");
    assert.equal(await key.open(nonce, aad, sealed.subarray(0, 10)), null, "shorter than a tag");
    assert.equal(await key.open(nonce, aad, sealed.subarray(0, 40)), null, "tag cut off");
    assert.equal(await key.open(nonce, aad, sealed.subarray(1)), null, "a byte dropped");
    const inPlace = sealed.slice();
    assert.deepEqual(
      await key.open(nonce, aad, inPlace, { inPlace: true }),
      new Uint8Array(40).fill(7),
    );
  });
}

for (const implementation of ENGINES) {
  Deno.test(`${implementation} AES-GCM seals several frames at once on one key, each its own bytes`, async () => {
    // A session keeps several seals in flight (WebCrypto's run on other threads): each must
    // take its parts when called, since the caller reuses them at once.
    const m = await material();
    const key = aesGcmKey(m, { implementation });
    const reference = aesGcmKey(m, { implementation: "node" });
    const aad = Uint8Array.of(1, 4);
    const part = new Uint8Array(70_000);
    const frames = [0, 1, 2, 3].map((i) => {
      const nonce = new Uint8Array(12).fill(i);
      part.fill(i + 1); // the same part buffer, refilled before each seal
      const out = new Uint8Array(1 + part.length + TAG_BYTES);
      return { nonce, out, sealing: key.seal(nonce, aad, [Uint8Array.of(i), part], out) };
    });
    await Promise.all(frames.map((f) => f.sealing));
    for (const [i, { nonce, out }] of frames.entries()) {
      const want = new Uint8Array(out.length);
      reference.seal(nonce, aad, [Uint8Array.of(i), new Uint8Array(70_000).fill(i + 1)], want);
      const wrong = out.findIndex((byte, at) => byte !== want[at]); // no megabyte diff
      assert.equal(wrong, -1, `frame ${i} sealed its own plaintext (first wrong byte ${wrong})`);
    }
  });
}

for (const implementation of FFI_ENGINES) {
  Deno.test(`${implementation} opening in place or into a head and a buffer leaves no unauthenticated plaintext behind`, async () => {
    const key = aesGcmKey(await material(), { implementation });
    const nonce = new Uint8Array(12);
    const sealed = new Uint8Array(40 + TAG_BYTES);
    key.seal(nonce, Uint8Array.of(9), [new Uint8Array(40).fill(7)], sealed);
    sealed[40]! ^= 1; // the tag
    const head = new Uint8Array(1).fill(0xee);
    const into = new Uint8Array(39).fill(0xee);
    assert.equal(key.open(nonce, Uint8Array.of(9), sealed, { into, head }), null);
    assert.ok(head[0] === 0 && into.every((x) => x === 0), "head and buffer zeroed");
    assert.equal(key.open(nonce, Uint8Array.of(9), sealed, { inPlace: true }), null);
    assert.ok(sealed.subarray(0, 40).every((x) => x === 0), "decrypted in place, then zeroed");
  });

  Deno.test(`${implementation} AES-GCM refuses a wrong key, nonce or output size with a RangeError, before touching memory`, async () => {
    assert.throws(() => aesGcmKey({ raw: new Uint8Array(16) }, { implementation }), RangeError);
    const key = aesGcmKey(await material(), { implementation });
    const part = new Uint8Array(40);
    assert.throws(
      () => key.seal(new Uint8Array(8), new Uint8Array(0), [part], new Uint8Array(56)),
      RangeError,
    );
    assert.throws(
      () => key.seal(new Uint8Array(12), new Uint8Array(0), [part], new Uint8Array(55)),
      RangeError,
      "an output a byte short",
    );
    assert.throws(
      () => key.open(new Uint8Array(16), new Uint8Array(0), new Uint8Array(56)),
      RangeError,
    );
    assert.throws(
      () =>
        key.open(new Uint8Array(12), new Uint8Array(0), new Uint8Array(56), {
          into: new Uint8Array(39),
        }),
      RangeError,
      "a buffer too small for the plaintext",
    );
  });
}

Deno.test("libIPSec_MB is used only in the versions whose GCM structures are known, 1.3 to 2.0", () => {
  for (const v of [0x010300, 0x010500, 0x020000, 0x020002]) {
    assert.ok(ipsecMbVersionSupported(v), v.toString(16));
  }
  for (const v of [0, 0x010100, 0x010200, 0x020100, 0x030000]) {
    assert.ok(!ipsecMbVersionSupported(v), v.toString(16));
  }
});

Deno.test({
  name: "libIPSec_MB's key data and context are aligned to 16 bytes, which its code needs",
  ignore: !ipsecMb, // the pointer APIs need the ffi permission, which the test task grants
  fn: () => {
    const keep = [];
    for (let i = 0; i < 2000; i++) {
      const buffers = ipsecMbBuffers();
      if (i % 2) keep.push(buffers, new Uint8Array(24 + i)); // vary the heap between them
      for (const b of [buffers.keyData, buffers.context]) {
        const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
        assert.equal(address % 16n, 0n, `allocation ${i}: ${b.length} bytes at …${address % 64n}`);
      }
    }
    assert.ok(keep.length > 0);
  },
});

Deno.test("auto uses libIPSec_MB only where its VAES AVX-512 code can run (elsewhere OpenSSL is as fast)", async () => {
  // What libIPSec_MB 1.3 reported on this machine's AMD EPYC (Zen 4), and on CPUs without VAES.
  assert.ok(ipsecMbHasVaes(0x37ffffn), "Zen 4: VAES, VPCLMULQDQ, GFNI, IFMA, AVX-512");
  assert.ok(ipsecMbHasVaes(0xc073fffn), "2.0's features add the OS's XSAVE bits");
  assert.ok(!ipsecMbHasVaes(0x40fffn), "Skylake-X: AVX-512 without VAES");
  assert.ok(!ipsecMbHasVaes(IMB_AVX512_T2_FEATURES & ~(1n << 12n)), "no VAES");
  assert.ok(
    !ipsecMbHasVaes(IMB_AVX512_T2_FEATURES & ~(1n << 17n)),
    "no AVX-512 IFMA (Intel's own set-up wants it)",
  );
  const m = await material();
  const expected = ipsecMb ? "ipsec-mb" : hasOpenSsl ? "openssl" : "webcrypto";
  assert.equal(aesGcmKey(m).implementation, expected);
});

Deno.test("without the ffi permission or a raw key the session falls back to WebCrypto", async () => {
  const m = await material();
  assert.equal(aesGcmKey({ key: m.key }).implementation, "webcrypto");
  assert.equal(aesGcmKey(m, { implementation: "webcrypto" }).implementation, "webcrypto");
  assert.throws(() => aesGcmKey({ key: m.key }, { implementation: "openssl" }), TypeError);
  assert.throws(() => aesGcmKey({ key: m.key }, { implementation: "ipsec-mb" }), TypeError);
  assert.throws(() => aesGcmKey({ key: m.key }, { implementation: "node" }), TypeError);
  assert.equal(aesGcmKey(m, { implementation: "node" }).implementation, "node");
});

Deno.test("WebCrypto keyed from raw bytes takes its inputs when called, while its key is still being imported", async () => {
  const { raw } = await material();
  const reference = aesGcmKey({ raw }, { implementation: "node" });
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const aad = Uint8Array.of(1, 4, 0, 0, 0, 0, 0, 0, 0, 3);
  const part = filled(70_000);
  const want = new Uint8Array(part.length + TAG_BYTES);
  reference.seal(nonce, aad, [part], want);
  const expected = part.slice();

  // The session reuses its nonce, AAD and frame buffers as soon as seal() and open() return.
  const sealer = aesGcmKey({ raw }, { implementation: "webcrypto" });
  const out = new Uint8Array(want.length);
  const sealing = sealer.seal(nonce.slice(), aad.slice(), [part], out);
  part.fill(0);
  await sealing;
  assert.equal(out.findIndex((byte, at) => byte !== want[at]), -1, "sealed what it was given");

  const opener = aesGcmKey({ raw }, { implementation: "webcrypto" });
  const [n, a, sealed] = [nonce.slice(), aad.slice(), want.slice()];
  const opening = opener.open(n, a, sealed);
  n.fill(0);
  a.fill(0);
  sealed.fill(0);
  const opened = await opening;
  assert.ok(opened && opened.findIndex((byte, at) => byte !== expected[at]) === -1, "opened");
});

Deno.test("large frames split anywhere decode whole, each in a buffer of its own", () => {
  const bodies = [100_000, 3, 262_140, 20_000].map((n, i) => new Uint8Array(n).fill(i + 1));
  const stream = new Uint8Array(bodies.reduce((n, b) => n + b.length + 6, 0));
  let at = 0;
  for (const body of bodies) {
    const frame = encodeFrame({ type: FrameType.DATA, body });
    stream.set(frame, at);
    at += frame.length;
  }
  for (const step of [1000, 4, 5, 65_536, 262_144, stream.length]) {
    const decoder = new FrameDecoder();
    const got = [];
    for (let i = 0; i < stream.length; i += step) {
      got.push(...decoder.push(stream.slice(i, i + step)));
    }
    assert.equal(decoder.buffered, 0);
    assert.deepEqual(got.map((f) => f.body), bodies, `chunks of ${step}`);
  }
});

Deno.test("a frame built in place is written as it is", () => {
  const encoded = encodeFrame({ type: FrameType.PING, body: Uint8Array.of(1, 2) });
  const frame = { type: FrameType.PING, body: encoded.subarray(6), encoded };
  assert.equal(encodeFrame(frame), encoded);
});

/** The engine `auto` picks in a new process holding `--allow-ffi=<paths>` and nothing more. */
async function autoEngineWith(paths: string[]): Promise<string> {
  const module = new URL("../../src/peer/aes_gcm.ts", import.meta.url).href;
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-ffi-" });
  try {
    const script = `${dir}/auto.ts`;
    await Deno.writeTextFile(
      script,
      `import { aesGcmKey } from ${JSON.stringify(module)};
console.log(aesGcmKey({ raw: new Uint8Array(32) }).implementation);`,
    );
    // `deno run`, not `deno eval`: eval holds every permission.
    const ffi = paths.length ? [`--allow-ffi=${paths.join(",")}`] : [];
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...ffi, script],
    }).output();
    assert.ok(out.success, `the child failed: ${new TextDecoder().decode(out.stderr)}`);
    return new TextDecoder().decode(out.stdout).trim();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "a process opens only the libraries it holds the ffi permission for, never asking for more",
  ignore: !(hasOpenSsl && ipsecMb),
  fn: async () => {
    const deno = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
    const cli = /--allow-ffi=(\S+)/.exec(deno.tasks.mailpeer)![1]!.split(",");
    const libcrypto = cli.filter((p) => p.includes("libcrypto"));
    assert.equal(await autoEngineWith(cli), "ipsec-mb", "the CLI's permissions");
    assert.equal(await autoEngineWith(libcrypto), "openssl", "libcrypto's paths only");
    assert.equal(await autoEngineWith([]), "webcrypto", "no ffi permission");
  },
});
