/** The permissions the peer bench's "CLI default" ends get: read from deno.json's mailpeer task. */
import assert from "node:assert/strict";
import { cliPermissions, projectCliPermissions } from "../../scripts/benchmarks/cli_permissions.ts";

Deno.test("the CLI's permissions are the --allow flags of deno.json's mailpeer task", () => {
  const json = JSON.stringify({
    tasks: { mailpeer: "deno run --no-prompt --allow-net --allow-ffi=/a.so,/b.so main.ts" },
  });
  assert.deepEqual(cliPermissions(json), ["--allow-net", "--allow-ffi=/a.so,/b.so"]);
  assert.throws(() => cliPermissions("{}"), /no mailpeer task/);
  const project = projectCliPermissions();
  assert.ok(project.some((f) => f.startsWith("--allow-ffi=/")), "ffi limited to paths");
  assert.ok(!project.includes("--allow-ffi"), "never the broad ffi permission");
});
