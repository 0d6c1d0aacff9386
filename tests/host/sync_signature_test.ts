/**
 * Rows merged from another host carry the terminal's signature (issue 12): a host that gained
 * trust through `accept_unknown_hosts` cannot inject a row no terminal signed, nor alter the
 * endpoints of a row a terminal did sign.
 */
import assert from "node:assert/strict";
import { MemoryHostDirectory } from "../../src/host/pool/host_directory.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { SyncAgent } from "../../src/host/pool/sync_agent.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { sealSignedBlock, signedBlockData } from "../../src/message/block.ts";
import { encodeRequest } from "../../src/message/codec.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import {
  generateHostKeys,
  hostCardOf,
  type HostKeys,
  type IdentityKeys,
} from "../../src/message/key_file.ts";
import { generateX25519, sign } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { syncRowProblem } from "../../src/host/pool/request_proof.ts";
import { decodeSyncPayload, encodeSyncPayload } from "../../src/host/pool/sync_payload.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { NETWORK, World } from "../support/world.ts";

const utf8 = new TextEncoder();

/** A row as a snapshot carries it, with the terminal's signed request when `signed`. */
async function wireRow(
  w: World,
  evil: HostKeys,
  o: {
    identity: IdentityKeys;
    endpoints: Endpoint[];
    signedEndpoints?: Endpoint[];
    signed: boolean;
  },
) {
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const createdAt = w.clock.now();
  const row: Record<string, unknown> = {
    userId: o.identity.userId,
    network: NETWORK,
    identityKey: toBase64Url(o.identity.ed25519.publicKey),
    endpoints: o.endpoints,
    sessionId: toBase64Url(sessionId),
    requestedAt: createdAt,
    failures: 0,
  };
  if (o.signed) {
    // The terminal's own request to the evil host: genuinely signed by the terminal's key.
    const body = encodeRequest({
      network: NETWORK,
      userId: o.identity.userId,
      identityKey: o.identity.ed25519.publicKey,
      endpoints: o.signedEndpoints ?? o.endpoints,
      sessionId,
      createdAt,
      replyKey: (await generateX25519()).publicKey,
      hostCards: [],
    });
    const recipient = evil.x25519.publicKey;
    const signature = await sign(
      o.identity.ed25519.privateKey,
      signedBlockData("request", recipient, body),
    );
    row.proof = {
      body: toBase64Url(body),
      signature: toBase64Url(signature),
      recipient: toBase64Url(recipient),
    };
  }
  return row;
}

Deno.test("a host trusted through accept_unknown_hosts cannot inject rows no terminal signed", async () => {
  const w = await World.create();
  try {
    const { sync: a } = w.syncAgent({ acceptUnknownHosts: true });
    // A stranger host asks for A's table, and so becomes trusted.
    const evil = await generateHostKeys("evil@evil.test");
    const evilDirectory = new MemoryHostDirectory({ self: hostCardOf(evil) });
    await evilDirectory.add([w.card], { trusted: true });
    const evilAgent = new SyncAgent({
      keys: evil,
      network: NETWORK,
      source: await w.sourceOf(evil.email),
      sender: w.sender,
      store: new MemoryStore(),
      directory: evilDirectory,
      clock: w.clock,
    });
    await evilAgent.requestTables();
    assert.equal((await a.processPending()).answered, 1);

    const there: Endpoint[] = [{ transport: "tcp", address: "192.0.2.30", port: 4030 }];
    const mine: Endpoint[] = [{ transport: "tcp", address: "198.51.100.66", port: 6666 }];
    const [ghost, dave, carol] = await Promise.all(
      ["ghost", "dave", "carol"].map((u) => w.player(u, 4000)),
    );
    const rows = [
      await wireRow(w, evil, { identity: ghost!.identity, endpoints: mine, signed: false }),
      await wireRow(w, evil, {
        identity: dave!.identity,
        endpoints: mine,
        signedEndpoints: there,
        signed: true,
      }),
      await wireRow(w, evil, { identity: carol!.identity, endpoints: there, signed: true }),
    ];
    const payload = {
      network: NETWORK,
      hostId: toBase64Url(evil.ed25519.publicKey),
      createdAt: w.clock.now(),
      kind: "snapshot",
      rows,
      cards: [formatHostCard(hostCardOf(evil))],
    };
    const block = await sealSignedBlock("sync", utf8.encode(JSON.stringify(payload)), {
      signer: evil.ed25519.privateKey,
      recipient: w.hostKeys.x25519.publicKey,
      maxBytes: 1 << 20,
    });
    await w.sender.send({
      from: evil.email,
      to: [w.hostKeys.email],
      subject: subjectFor(NETWORK, "sync"),
      text: bodyFor(NETWORK, "sync", block),
    });
    await a.processPending();
    const table = new Map((await w.store.read()).map((r) => [r.userId, r]));
    assert.equal(table.has("ghost"), false, "a row no terminal signed is not merged");
    assert.equal(table.has("dave"), false, "a row whose endpoints the terminal did not sign");
    assert.deepEqual(table.get("carol")?.endpoints, there, "a signed row is merged");
  } finally {
    await w.close();
  }
});

Deno.test("a synced row's signed request reads back as written, and a malformed one is refused", async () => {
  const w = await World.create();
  try {
    const evil = await generateHostKeys("evil@evil.test");
    const carol = await w.player("carol", 4000);
    const row = await wireRow(w, evil, {
      identity: carol.identity,
      endpoints: carol.endpoints,
      signed: true,
    });
    const snapshot = (r: unknown) =>
      utf8.encode(JSON.stringify({
        network: NETWORK,
        hostId: toBase64Url(evil.ed25519.publicKey),
        createdAt: w.clock.now(),
        kind: "snapshot",
        rows: [r],
        cards: [formatHostCard(hostCardOf(evil))],
      }));
    const read = decodeSyncPayload(snapshot(row));
    assert.ok(read.kind === "snapshot");
    assert.equal(await syncRowProblem(read.rows[0]!), undefined);
    assert.deepEqual(decodeSyncPayload(encodeSyncPayload(read)), read);
    const proof = row.proof as Record<string, string>;
    for (
      const bad of [
        { ...proof, signature: proof.signature!.slice(4) },
        { ...proof, extra: "x" },
        { ...proof, body: "" },
        "proof",
      ]
    ) {
      assert.throws(
        () => decodeSyncPayload(snapshot({ ...row, proof: bad })),
        /^MessageError: Cannot read sync: rows\[0\]\.proof/,
      );
    }
  } finally {
    await w.close();
  }
});
