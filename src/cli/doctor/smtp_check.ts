/**
 * The SMTP login check of `mailpeer doctor`: connect, STARTTLS or TLS as configured, and AUTH
 * with the configured user and password, without sending anything (nodemailer's `verify`).
 *
 * @module
 */
import type { SendConfig } from "../../config/config_schema.ts";
import { type CheckReport, needsTlsMessage, resultOf } from "./check.ts";
import { nodemailerTlsMode, nodeTlsSettings } from "../../mail/tls_settings.ts";

/** An SMTP send section. */
export type SmtpSend = Extract<SendConfig, { kind: "smtp" }>;

/** Logs in to the SMTP server of `config`; resolves true when it accepted the login. */
export async function checkSmtpLogin(
  config: SmtpSend,
  options: { password: string | undefined; accessToken?: string; report: CheckReport },
): Promise<boolean> {
  const key = config.section;
  const where = `${config.host}:${config.port}`;
  const r = resultOf("login", key);
  // Unreadable: the tls check said so (with tls = "none" it is not used).
  const ca = config.caFile
    ? await Deno.readTextFile(config.caFile).catch(() => undefined)
    : undefined;
  const { default: nodemailer } = await import("nodemailer");
  const transport = nodemailer.createTransport({
    host: config.host,
    port: config.port,
    ...nodemailerTlsMode(config.tls),
    // forceAuth: a server that offers no AUTH (e.g. not before STARTTLS) is asked anyway, so
    // that its refusal is said here, not on every mail later.
    ...(options.accessToken !== undefined
      ? {
        auth: { type: "OAuth2" as const, user: config.user, accessToken: options.accessToken },
        forceAuth: true,
      }
      : options.password !== undefined
      ? { auth: { user: config.user, pass: options.password }, forceAuth: true }
      : {}),
    tls: nodeTlsSettings(config, ca),
    connectionTimeout: config.connectTimeoutMs,
    greetingTimeout: config.connectTimeoutMs,
    logger: false,
  });
  const started = performance.now();
  try {
    await transport.verify();
    const ms = Math.round(performance.now() - started);
    options.report(
      options.password === undefined && options.accessToken === undefined
        ? r.warn(
          `SMTP ${where} was not asked to log in (no password configured): most providers ` +
            `refuse mail to other domains without it; set ${key}.password_env or password_file`,
        )
        : r.pass(`logged in to SMTP ${where} as ${config.user} (${ms} ms)`, { ms }),
    );
    return true;
  } catch (err) {
    const e = err as { code?: string; response?: string; message?: string };
    const answer = (e.response ?? e.message ?? String(err)).split("\n")[0]!.trim();
    options.report(
      r.fail(
        needsTlsMessage("SMTP", where, key, answer) ??
          (e.code === "EAUTH"
            ? `SMTP ${where} refused the login of ${config.user} (${answer}); check ${key}.user ` +
              `and the password that ${key}.password_env / password_file gives`
            : `Cannot log in to SMTP ${where}: ${answer}; check ${key}.port, ${key}.tls and ` +
              `${key}.user`),
      ),
    );
    return false;
  } finally {
    transport.close();
  }
}
