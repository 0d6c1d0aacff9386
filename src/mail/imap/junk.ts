/**
 * Finding an account's Junk folder: the mailbox its server marks with the RFC 6154 special use
 * `\Junk`, where spam filters file automated mail such as mailpeer's (docs/providers.md "Spam
 * folders").
 *
 * @module
 */
import { type Logger, silentLogger } from "../../log.ts";
import type { MailLogin } from "../types.ts";
import { connectImap } from "./connect.ts";
import { connectionError } from "./errors.ts";

/**
 * The path of the mailbox marked `\Junk`, else of one named Junk or Spam (as `doctor` looks
 * for it), or undefined when there is none. One short session: log in, LIST, log out. A failure to connect or log in is the
 * `MailError` the source itself would throw.
 */
export async function findJunkFolder(
  server: MailLogin,
  options: { configKey: string; logger?: Logger },
): Promise<string | undefined> {
  const ctx = {
    server: `${server.host}:${server.port}`,
    user: server.user,
    configKey: options.configKey,
    ...(server.servername !== undefined ? { servername: server.servername } : {}),
  };
  let connected;
  try {
    connected = await connectImap(server, {
      mailbox: "INBOX",
      logger: options.logger ?? silentLogger,
      ctx,
      onClose: () => {},
      onExists: () => {},
    });
  } catch (err) {
    throw connectionError(err, ctx);
  }
  const { client } = connected;
  try {
    const boxes = await client.list();
    // Flagged \Junk first; else a folder named as mail clients name it.
    return boxes.find((box) => box.specialUse === "\\Junk")?.path ??
      boxes.find((box) => /^(junk|spam)$/i.test(box.name))?.path;
  } finally {
    await client.logout().catch(() => client.close());
  }
}
