import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { PeerError } from "../../src/errors.ts";
import {
  CHUNK_TAG,
  DEFAULT_CHUNK_BYTES,
  sanitizeFileName,
} from "../../src/apps/file_transfer_control.ts";
import {
  type ByteSource,
  receiveFile,
  sendFile,
  sendStream,
  type TransferProgress,
} from "../../src/apps/file_transfer.ts";
import type { PeerLink } from "../../src/peer/types.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { makeIdentity, rejectsWithCode } from "../conformance/peer_transport.ts";
import { fakeLinkPair } from "./fake_link.ts";

const MiB = 1024 * 1024;

/** A connected TCP link pair on 127.0.0.1; `close()` tears everything down. */
async function tcpPair(): Promise<{ a: PeerLink; b: PeerLink; close(): Promise<void> }> {
  const tcp = new TcpTransport();
  const listener = await tcp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: await makeIdentity("bob"),
  });
  const [a, b] = await Promise.all([
    tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
    listener.accept(),
  ]);
  return {
    a,
    b,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      await listener.close();
    },
  };
}

/** A tiny seeded PRNG (xorshift32), so the loss pattern is the same every run. */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/**
 * A connected UDP link pair on 127.0.0.1 whose sockets drop each outgoing datagram with
 * probability `loss`, drawn from a seeded PRNG.
 */
async function udpPair(loss: number, seed = 0x5eed) {
  const random = xorshift32(seed);
  const counts = { seen: 0, dropped: 0 };
  const udp = new UdpTransport({
    backoff: () => 20,
    lossy: (direction) => {
      if (direction !== "out") return false;
      counts.seen++;
      const drop = random() < loss;
      if (drop) counts.dropped++;
      return drop;
    },
  });
  const listener = await udp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: await makeIdentity("bob"),
  });
  const [a, b] = await Promise.all([
    udp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
    listener.accept(),
  ]);
  return {
    a,
    b,
    counts,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      await listener.close();
    },
  };
}

/** Writes `mib` MiB: a random 1 MiB block repeated, each copy stamped with its index. */
async function writeTestFile(path: string, mib: number): Promise<string> {
  const block = new Uint8Array(MiB);
  for (let at = 0; at < MiB; at += 65536) crypto.getRandomValues(block.subarray(at, at + 65536));
  const hash = createHash("sha256");
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for (let i = 0; i < mib; i++) {
      new DataView(block.buffer).setUint32(0, i);
      hash.update(block);
      for (let at = 0; at < block.length;) at += await file.write(block.subarray(at));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buf = new Uint8Array(MiB);
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

async function withDirs(fn: (from: string, to: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "mailpeer-files-" });
  const from = join(root, "from");
  const to = join(root, "to");
  await Deno.mkdir(from);
  await Deno.mkdir(to);
  try {
    await fn(from, to);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const listDir = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

Deno.test("a 3 MB file of random bytes arrives intact over TCP and progress reaches the total", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "save.bin");
    const content = new Uint8Array(3 * MiB + 12345);
    for (let at = 0; at < content.length; at += 65536) {
      crypto.getRandomValues(content.subarray(at, Math.min(content.length, at + 65536)));
    }
    await Deno.writeFile(source, content);
    const expected = createHash("sha256").update(content).digest("hex");
    const sent: TransferProgress[] = [];
    const got: TransferProgress[] = [];
    const pair = await tcpPair();
    try {
      const [s, r] = await Promise.all([
        sendFile(pair.a, source, { onProgress: (p) => sent.push(p) }),
        receiveFile(pair.b, to, { onProgress: (p) => got.push(p) }),
      ]);
      assert.equal(s.sha256, expected);
      assert.equal(r.sha256, expected);
      assert.equal(r.path, join(to, "save.bin"));
      assert.deepEqual(await Deno.readFile(r.path), content);
      assert.deepEqual(sent.at(-1), { done: content.length, total: content.length });
      assert.deepEqual(got.at(-1), { done: content.length, total: content.length });
      assert.ok(got.every((p, i) => i === 0 || p.done > got[i - 1]!.done));
      assert.deepEqual(await listDir(to), ["save.bin"]);
    } finally {
      await pair.close();
    }
  });
});

Deno.test("a 100 MB file arrives intact over TCP on loopback", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "big.bin");
    const expected = await writeTestFile(source, 100);
    const pair = await tcpPair();
    try {
      const [s, r] = await Promise.all([sendFile(pair.a, source), receiveFile(pair.b, to)]);
      assert.equal(s.size, 100 * MiB);
      assert.equal(r.size, 100 * MiB);
      assert.equal(r.sha256, expected);
      assert.equal(await sha256Of(r.path), expected);
    } finally {
      await pair.close();
    }
  });
});

Deno.test("a 20 MB file arrives intact over UDP with 5 % of datagrams dropped", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "big.bin");
    const expected = await writeTestFile(source, 20);
    const pair = await udpPair(0.05);
    try {
      const [s, r] = await Promise.all([sendFile(pair.a, source), receiveFile(pair.b, to)]);
      assert.equal(s.size, 20 * MiB);
      assert.equal(r.sha256, expected);
      assert.equal(await sha256Of(r.path), expected);
      assert.ok(pair.counts.dropped > 500, `${pair.counts.dropped} datagrams were dropped`);
    } finally {
      await pair.close();
    }
  });
});

Deno.test("chunks smaller or larger than the receiver's buffer arrive intact over TCP", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "odd.bin");
    const content = new Uint8Array(7 * MiB + 321);
    for (let at = 0; at < content.length; at += 65536) {
      crypto.getRandomValues(content.subarray(at, Math.min(content.length, at + 65536)));
    }
    await Deno.writeFile(source, content);
    const expected = createHash("sha256").update(content).digest("hex");
    const pair = await tcpPair();
    try {
      for (const chunkBytes of [1000, DEFAULT_CHUNK_BYTES, 3 * MiB + 1, DEFAULT_CHUNK_BYTES]) {
        const [s, r] = await Promise.all([
          sendFile(pair.a, source, { chunkBytes }),
          receiveFile(pair.b, to, { overwrite: true }),
        ]);
        assert.equal(s.sha256, expected, `chunks of ${chunkBytes}`);
        assert.equal(r.sha256, expected, `chunks of ${chunkBytes}`);
        assert.equal(await sha256Of(r.path), expected, `chunks of ${chunkBytes}: the file`);
      }
    } finally {
      await pair.close();
    }
  });
});

Deno.test("a file altered on the way is refused with EFRAME and leaves no file behind", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "level.dat");
    await Deno.writeFile(source, crypto.getRandomValues(new Uint8Array(50_000)));
    let flipped = false;
    const { a, b } = fakeLinkPair({
      tamperAtoB: (message) => {
        if (message[0] === CHUNK_TAG && !flipped) {
          message[100] = message[100]! ^ 0xff;
          flipped = true;
        }
        return message;
      },
    });
    const receiving = receiveFile(b, to);
    const sending = sendFile(a, source, { chunkBytes: 16 * 1024 });
    const receiverFailed = assert.rejects(receiving, (err: unknown) => {
      assert.ok(err instanceof PeerError);
      assert.equal(err.code, "EFRAME");
      assert.match(err.message, /^Cannot receive file level\.dat: hash mismatch; ask the sender/);
      return true;
    });
    await Promise.all([receiverFailed, rejectsWithCode(sending, "EPEER")]);
    assert.ok(flipped);
    assert.deepEqual(await listDir(to), []);
  });
});

Deno.test("a hostile name like ../../etc/passwd lands as passwd inside the target directory", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "anything");
    await Deno.writeFile(source, new TextEncoder().encode("root:x:0:0"));
    const { a, b } = fakeLinkPair();
    const [, r] = await Promise.all([
      sendFile(a, source, { name: "../../etc/passwd" }),
      receiveFile(b, to),
    ]);
    assert.equal(r.name, "passwd");
    assert.equal(r.path, join(to, "passwd"));
    assert.deepEqual(await listDir(to), ["passwd"]);
  });
});

Deno.test("received names are reduced to a safe plain file name", () => {
  assert.equal(sanitizeFileName("../../etc/passwd"), "passwd");
  assert.equal(sanitizeFileName("..\\..\\Windows\\win.ini"), "win.ini");
  assert.equal(sanitizeFileName("/abs/path/"), "path");
  assert.equal(sanitizeFileName(".bashrc"), "bashrc");
  assert.equal(sanitizeFileName(".."), "received-file");
  assert.equal(sanitizeFileName(""), "received-file");
  assert.equal(sanitizeFileName("a\u0000b\nc\u202e.txt"), "abc.txt");
  assert.equal(sanitizeFileName("what?.txt"), "what_.txt");
  assert.equal(sanitizeFileName("trailing.. "), "trailing");
  const long = sanitizeFileName("é".repeat(300));
  assert.ok(new TextEncoder().encode(long).length <= 200);
});

Deno.test("an existing file is kept and the transfer refused unless overwrite is allowed", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "notes.txt");
    await Deno.writeTextFile(source, "new");
    await Deno.writeTextFile(join(to, "notes.txt"), "old");
    const first = fakeLinkPair();
    const refused = receiveFile(first.b, to);
    await Promise.all([
      rejectsWithCode(sendFile(first.a, source), "EPEER"),
      rejectsWithCode(refused, "EPEER"),
    ]);
    assert.equal(await Deno.readTextFile(join(to, "notes.txt")), "old");
    assert.deepEqual(await listDir(to), ["notes.txt"]);

    const second = fakeLinkPair();
    await Promise.all([sendFile(second.a, source), receiveFile(second.b, to, { overwrite: true })]);
    assert.equal(await Deno.readTextFile(join(to, "notes.txt")), "new");
  });
});

Deno.test("a file larger than maxBytes is refused before any of it is sent", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "huge.iso");
    await Deno.writeFile(source, new Uint8Array(10_000));
    let chunks = 0;
    const { a, b } = fakeLinkPair({
      tamperAtoB: (m) => {
        if (m[0] === CHUNK_TAG) chunks++;
        return m;
      },
    });
    const receiving = receiveFile(b, to, { maxBytes: 1000 });
    await Promise.all([
      assert.rejects(sendFile(a, source), /receiver refused it/),
      rejectsWithCode(receiving, "EPEER"),
    ]);
    assert.equal(chunks, 0);
    assert.deepEqual(await listDir(to), []);
  });
});

Deno.test("a sender that cancels midway leaves no partial file at the receiver", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "movie.mkv");
    await Deno.writeFile(source, new Uint8Array(100_000));
    const { a, b } = fakeLinkPair();
    const stop = new AbortController();
    const receiving = receiveFile(b, to);
    const sending = sendFile(a, source, {
      chunkBytes: 10_000,
      signal: stop.signal,
      onProgress: ({ done }) => done >= 30_000 && stop.abort(new Error("user pressed stop")),
    });
    await Promise.all([
      assert.rejects(sending, /user pressed stop/),
      assert.rejects(receiving, /the sender cancelled \(user pressed stop\)/),
    ]);
    assert.deepEqual(await listDir(to), []);
  });
});

Deno.test("a sender that disconnects midway leaves no partial file at the receiver", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "photo.jpg");
    await Deno.writeFile(source, new Uint8Array(100_000));
    const { a, b } = fakeLinkPair();
    const receiving = receiveFile(b, to);
    const sending = sendFile(a, source, {
      chunkBytes: 10_000,
      onProgress: ({ done }) => done >= 30_000 && void a.close(),
    });
    await Promise.all([rejectsWithCode(sending, "EPEER"), rejectsWithCode(receiving, "EPEER")]);
    assert.deepEqual(await listDir(to), []);
  });
});

Deno.test("a leftover .part file refuses the transfer and is left for the user to remove", async () => {
  await withDirs(async (from, to) => {
    const source = join(from, "saves.zip");
    await Deno.writeTextFile(source, "new");
    await Deno.writeTextFile(join(to, "saves.zip.part"), "someone else's");
    const { a, b } = fakeLinkPair();
    const receiving = receiveFile(b, to);
    await Promise.all([
      assert.rejects(sendFile(a, source), /receiver refused it \(the receiver cannot store it\)/),
      assert.rejects(receiving, /remove a leftover \.part file/),
    ]);
    assert.equal(await Deno.readTextFile(join(to, "saves.zip.part")), "someone else's");
  });
});

/** A pipe-like source: hands out `content` in reads of at most `step` bytes, then ends. */
function pipeOf(content: Uint8Array, step: number): ByteSource & { reads: number } {
  let at = 0;
  return {
    reads: 0,
    read(into: Uint8Array) {
      this.reads++;
      if (at >= content.length) return Promise.resolve(null);
      const n = Math.min(step, into.length, content.length - at);
      into.set(content.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("a stream of unknown length (a pipe) arrives whole over TCP under the name it was given", async () => {
  await withDirs(async (_from, to) => {
    const content = new Uint8Array(3 * MiB + 777);
    for (let at = 0; at < content.length; at += 65536) {
      crypto.getRandomValues(content.subarray(at, Math.min(content.length, at + 65536)));
    }
    const expected = createHash("sha256").update(content).digest("hex");
    const sent: TransferProgress[] = [];
    const got: TransferProgress[] = [];
    const pair = await tcpPair();
    try {
      const [s, r] = await Promise.all([
        sendStream(pair.a, pipeOf(content, 7000), {
          name: "maps.tar",
          onProgress: (p) => sent.push(p),
        }),
        receiveFile(pair.b, to, { onProgress: (p) => got.push(p) }),
      ]);
      assert.deepEqual([s.size, s.sha256], [content.length, expected]);
      assert.deepEqual([r.size, r.sha256], [content.length, expected]);
      assert.equal(r.path, join(to, "maps.tar"));
      assert.deepEqual(await Deno.readFile(r.path), content);
      // Neither side knows the total while the stream crosses.
      assert.deepEqual(sent.at(-1), { done: content.length });
      assert.deepEqual(got.at(-1), { done: content.length });
    } finally {
      await pair.close();
    }
  });
});

Deno.test("an empty stream arrives as an empty file", async () => {
  await withDirs(async (_from, to) => {
    const { a, b } = fakeLinkPair();
    const [s, r] = await Promise.all([
      sendStream(a, pipeOf(new Uint8Array(), 100), { name: "nothing" }),
      receiveFile(b, to),
    ]);
    assert.equal(s.size, 0);
    assert.equal(r.size, 0);
    assert.deepEqual(await Deno.readFile(join(to, "nothing")), new Uint8Array());
  });
});

Deno.test("a stream that grows past the receiver's maxBytes is refused as it comes, the sender stops and no file is left", async () => {
  await withDirs(async (_from, to) => {
    // An endless source: a hostile or mistaken sender piping /dev/zero.
    const endless: ByteSource & { reads: number } = {
      reads: 0,
      read(into) {
        this.reads++;
        into.fill(0);
        return Promise.resolve(into.length);
      },
    };
    // Over TCP: the session's back-pressure holds the sender to what the receiver takes.
    const pair = await tcpPair();
    try {
      await Promise.all([
        assert.rejects(
          sendStream(pair.a, endless, { name: "zero", chunkBytes: 65536 }),
          /receiver refused it \(more than the receiver accepts \(1048576 bytes\)\)/,
        ),
        assert.rejects(receiveFile(pair.b, to, { maxBytes: MiB }), /grew past maxBytes 1048576/),
      ]);
    } finally {
      await pair.close();
    }
    // The sender stopped at the refusal: what it read is bounded by the buffers on the way
    // (4 MiB unread in the session, the sockets' own), not endless.
    assert.ok(endless.reads < 1024, `the sender read ${endless.reads} chunks of 64 KiB`);
    assert.deepEqual(await listDir(to), []);
  });
});

Deno.test("a stream whose end message claims another size than crossed is refused with EFRAME", async () => {
  await withDirs(async (_from, to) => {
    const { a, b } = fakeLinkPair({
      tamperAtoB: (m) => {
        if (m[0] !== 1) return m;
        const control = JSON.parse(new TextDecoder().decode(m.subarray(1)));
        if (control.kind !== "end") return m;
        control.size += 1;
        return new Uint8Array([1, ...new TextEncoder().encode(JSON.stringify(control))]);
      },
    });
    const receiving = receiveFile(b, to);
    await Promise.all([
      assert.rejects(
        sendStream(a, pipeOf(new Uint8Array(5000), 1000), { name: "x" }),
        /receiver refused it/,
      ),
      rejectsWithCode(receiving, "EFRAME"),
    ]);
    assert.deepEqual(await listDir(to), []);
  });
});
