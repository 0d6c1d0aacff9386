/**
 * The merge of another host's snapshot rows into this host's control table (docs/design.md "Host
 * pool"), as a pure function: {@link mergeSyncRows}. The sync agent runs it inside one table
 * update.
 *
 * @module
 */
import { MAX_CLOCK_SKEW_MS } from "../../limits.ts";
import { toBase64Url } from "../../message/base64.ts";
import { decodeRequest } from "../../message/codec.ts";
import type { SyncRow } from "./sync_payload.ts";
import { endpointProblem } from "../address_policy.ts";
import { expireRows, type TablePolicy } from "../table.ts";
import type { PeerRow } from "../types.ts";

/** Options of {@link mergeSyncRows}. */
export interface MergeOptions {
  now: number;
  /** Only rows of this network are merged. */
  network: string;
  policy: Pick<TablePolicy, "capacity" | "expiryMs">;
  /** Merge rows whose endpoints are loopback, private, link-local or reserved; default false. */
  allowPrivateAddresses?: boolean;
  /** Told of each incoming row refused for a reason worth a log line (an `EOWNER` conflict). */
  onRefused?: (row: SyncRow, code: "EOWNER", reason: string) => void;
}

/**
 * Merges rows from another host's snapshot into ours (pure; returns new rows). The caller
 * passes only rows whose terminal signature it verified (`syncRowProblem`, host/pool/request_proof.ts).
 *
 * Keyed by network + user id, like upsertRow:
 * - a user we do not have is added, with e-mail address `""` (only the host that received the
 *   request knows it);
 * - a row of another identity key than our live row of that user id is refused (the user id is
 *   bound to its key while the row lives, in synced tables too) and told to `onRefused`;
 * - the newer request (`requestedAt`) wins; on a tie the larger session id, so every host
 *   settles on the same row. A winning incoming row keeps our e-mail address and history;
 * - a row's candidates are read from its signed request (the proof), never taken unsigned;
 * - the same request (same session id) on both sides keeps the larger failure count, so a
 *   notice sent to one host lowers that peer on every host.
 *
 * Rows of other networks, expired rows, rows dated more than the clock skew in the future and
 * rows with endpoints or signed candidates (relayed ones too) this host's address policy refuses
 * are skipped. Our expired rows are dropped, and when over capacity the oldest rows go first.
 */
export function mergeSyncRows(
  rows: readonly PeerRow[],
  incoming: readonly SyncRow[],
  options: MergeOptions,
): { rows: PeerRow[]; changed: number } {
  const { now, network, policy } = options;
  const allowPrivate = options.allowPrivateAddresses ?? false;
  const next = expireRows(rows, now, policy);
  let changed = 0;
  for (const row of incoming) {
    if (row.network !== network) continue;
    if (row.requestedAt < now - policy.expiryMs || row.requestedAt > now + MAX_CLOCK_SKEW_MS) {
      continue;
    }
    // The candidates travel inside the terminal's signed request, verified by the caller.
    const signed = row.proof === undefined ? undefined : decodeRequest(row.proof.body);
    const addresses = [...row.endpoints, ...(signed?.candidates ?? [])];
    if (addresses.some((e) => endpointProblem(e, { allowPrivate }) !== undefined)) continue;
    const sessionId = toBase64Url(row.sessionId);
    const at = next.findIndex((r) => r.network === row.network && r.userId === row.userId);
    const existing = at < 0 ? undefined : next[at];
    const identityKey = toBase64Url(row.identityKey);
    if (existing !== undefined && existing.identityKey !== identityKey) {
      options.onRefused?.(
        row,
        "EOWNER",
        `synced row of user id ${row.userId} carries another identity key than the live row`,
      );
      continue;
    }
    const fresh: PeerRow = {
      userId: row.userId,
      network: row.network,
      identityKey,
      endpoints: row.endpoints.map((e) => ({ ...e })),
      email: existing?.email ?? "",
      sessionId,
      requestedAt: row.requestedAt,
      failures: row.failures,
    };
    if (row.lastFailureAt !== undefined) fresh.lastFailureAt = row.lastFailureAt;
    if (row.proof !== undefined && signed !== undefined) {
      if (signed.candidates !== undefined) fresh.candidates = signed.candidates;
      if (signed.introductionKey !== undefined) {
        fresh.introductionKey = toBase64Url(signed.introductionKey);
      }
      fresh.proof = {
        body: toBase64Url(row.proof.body),
        signature: toBase64Url(row.proof.signature),
        recipient: toBase64Url(row.proof.recipient),
      };
    }
    if (existing?.history !== undefined) fresh.history = existing.history.map((h) => ({ ...h }));
    if (existing === undefined) {
      next.push(fresh);
      changed++;
    } else if (existing.sessionId === sessionId) {
      if (row.failures > existing.failures) {
        next[at] = { ...existing, failures: row.failures, lastFailureAt: row.lastFailureAt ?? now };
        changed++;
      }
    } else if (
      row.requestedAt > existing.requestedAt ||
      (row.requestedAt === existing.requestedAt && sessionId > existing.sessionId)
    ) {
      next[at] = fresh;
      changed++;
    }
  }
  while (next.length > policy.capacity) {
    let oldest = 0;
    next.forEach((r, i) => {
      if (r.requestedAt < next[oldest]!.requestedAt) oldest = i;
    });
    next.splice(oldest, 1);
  }
  return { rows: next, changed };
}
