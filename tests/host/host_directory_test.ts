import assert from "node:assert/strict";
import { join } from "node:path";
import { JsonFileHostDirectory } from "../../src/host/pool/host_directory.ts";
import { generateHostKeys, hostCardOf } from "../../src/message/key_file.ts";

Deno.test("the host directory file keeps added cards and sweeps temp files a killed writer left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-hostdir-" });
  try {
    const path = join(dir, "hosts.json");
    const self = hostCardOf(await generateHostKeys("a@hosts.test"));
    const other = hostCardOf(await generateHostKeys("b@hosts.test"));
    // What a writer killed between creating its temp file and renaming it leaves behind,
    // beside files that only look alike.
    await Deno.writeTextFile(`${path}.tmp-4242-0123456789ab`, "{half a file");
    await Deno.writeTextFile(`${path}.tmp-notours`, "keep");
    await Deno.writeTextFile(join(dir, "other.json.tmp-4242-0123456789ab"), "keep");

    const directory = new JsonFileHostDirectory(path, { self });
    assert.equal(await directory.add([other], { trusted: true }), 1);
    const again = new JsonFileHostDirectory(path, { self });
    assert.deepEqual((await again.list()).map((c) => c.email), ["b@hosts.test"]);

    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(
      names.sort(),
      [
        "hosts.json",
        "hosts.json.lock",
        "hosts.json.tmp-notours",
        "other.json.tmp-4242-0123456789ab",
      ].filter((n) => n !== "hosts.json.lock" || names.includes(n)).sort(),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
