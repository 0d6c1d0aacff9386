/**
 * What a host's snapshot carries (docs/design.md "Host pool"), as pure functions: a control-table
 * row as it is synced ({@link syncRowOf}), the rows of a table that are synced
 * ({@link liveSyncRows}) and their split into snapshots that each fit a sync block
 * ({@link paginateSnapshot}).
 *
 * @module
 */
import { fromBase64Url, toBase64Url } from "../../message/base64.ts";
import {
  MAX_SYNC_BLOCK_BYTES,
  MAX_SYNC_ROWS,
  type SnapshotPayload,
  type SyncRow,
} from "./sync_payload.ts";
import { expireRows, type TablePolicy } from "../table.ts";
import type { PeerRow } from "../types.ts";

/** Room left in a sync block for everything but the rows (header, seal, signature, cards). */
const SNAPSHOT_OVERHEAD_BYTES = 8 * 1024;

const utf8 = new TextEncoder();

/**
 * A control-table row as it is synced: without e-mail address and request history, with the
 * terminal's signed request when the row has it.
 *
 * @throws {MessageError} `EBLOCK` when the row's keys, session id or proof are not base64url.
 */
export function syncRowOf(row: PeerRow): SyncRow {
  const out: SyncRow = {
    userId: row.userId,
    network: row.network,
    identityKey: fromBase64Url(row.identityKey),
    endpoints: row.endpoints.map((e) => ({
      transport: e.transport,
      address: e.address,
      port: e.port,
    })),
    sessionId: fromBase64Url(row.sessionId),
    requestedAt: row.requestedAt,
    failures: row.failures,
  };
  if (row.lastFailureAt !== undefined) out.lastFailureAt = row.lastFailureAt;
  if (row.proof !== undefined) {
    out.proof = {
      body: fromBase64Url(row.proof.body),
      signature: fromBase64Url(row.proof.signature),
      recipient: fromBase64Url(row.proof.recipient),
    };
  }
  return out;
}

/** Options of {@link liveSyncRows}. */
export interface LiveSyncRowsOptions {
  now: number;
  /** Only rows of this network are synced. */
  network: string;
  policy: Pick<TablePolicy, "expiryMs">;
  /**
   * Told of each row left out: its keys are not base64url, or it has no signed request of its
   * terminal (which a receiving host would refuse).
   */
  onSkip?: (row: PeerRow) => void;
}

/** The live rows of one network as they are synced, the newest request first. */
export function liveSyncRows(rows: readonly PeerRow[], options: LiveSyncRowsOptions): SyncRow[] {
  const { now, network, policy, onSkip } = options;
  const live = expireRows(rows, now, policy)
    .filter((r) => r.network === network)
    .sort((a, b) => b.requestedAt - a.requestedAt);
  const out: SyncRow[] = [];
  for (const row of live) {
    if (row.proof === undefined) {
      onSkip?.(row);
      continue;
    }
    try {
      out.push(syncRowOf(row));
    } catch {
      onSkip?.(row);
    }
  }
  return out;
}

/** Everything of a snapshot but its rows. */
export type SnapshotHeader = Omit<SnapshotPayload, "kind" | "rows">;

/**
 * Splits synced rows, in the order given, into snapshots of at most `MAX_SYNC_ROWS` rows that
 * each fit a sync block. Always at least one snapshot (an empty table is one without rows),
 * so the cards still travel.
 */
export function paginateSnapshot(
  rows: readonly SyncRow[],
  header: SnapshotHeader,
): SnapshotPayload[] {
  const { network, hostId, createdAt, cards } = header;
  const base = { network, hostId, createdAt, kind: "snapshot" };
  const pages: SnapshotPayload[] = [];
  let page: SyncRow[] = [];
  let size = 0;
  const budget = MAX_SYNC_BLOCK_BYTES - SNAPSHOT_OVERHEAD_BYTES;
  for (const row of rows) {
    const bytes = rowBytes(row);
    if (page.length > 0 && (page.length >= MAX_SYNC_ROWS || size + bytes > budget)) {
      pages.push({ ...base, kind: "snapshot", rows: page, cards });
      page = [];
      size = 0;
    }
    page.push(row);
    size += bytes;
  }
  pages.push({ ...base, kind: "snapshot", rows: page, cards });
  return pages;
}

/** About how many bytes a row takes in a snapshot's JSON. */
function rowBytes(row: SyncRow): number {
  return utf8.encode(JSON.stringify({
    ...row,
    identityKey: toBase64Url(row.identityKey),
    sessionId: toBase64Url(row.sessionId),
  })).length + 1;
}
