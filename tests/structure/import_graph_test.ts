/**
 * The shape of `src/` (docs/design.md "Folders of src/ and what may import what"), checked on
 * every run so that it stays: the module graph has no cycle (type-only imports count: a cycle of
 * types is a cycle of concepts), and no module of `src/` only re-exports another (import a name
 * from the module that defines it; `mod.ts`, the library's front door, is the one place that
 * gathers names).
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const SRC = new URL("../../src/", import.meta.url).pathname;

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** Relative module specifiers of static `import … from` and `export … from` statements. */
function imports(text: string): string[] {
  const found: string[] = [];
  const re = /^\s*(?:import|export)\s[^;]*?\sfrom\s+["'](\.{1,2}\/[^"']+)["']/gms;
  for (const m of text.matchAll(re)) found.push(m[1]!);
  // Side-effect imports: `import "./x.ts";`
  for (const m of text.matchAll(/^\s*import\s+["'](\.{1,2}\/[^"']+)["']/gm)) found.push(m[1]!);
  return found;
}

/** The strongly connected components of more than one module (or a module importing itself). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (let w = stack.pop()!;; w = stack.pop()!) {
      onStack.delete(w);
      component.push(w);
      if (w === v) break;
    }
    if (component.length > 1 || graph.get(v)?.has(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

async function graphOfSrc(): Promise<Map<string, Set<string>>> {
  const graph = new Map<string, Set<string>>();
  for (const file of await sources(SRC)) {
    const text = await Deno.readTextFile(file);
    const deps = imports(text).map((s) => normalize(join(dirname(file), s)));
    graph.set(file, new Set(deps));
  }
  return graph;
}

Deno.test("the module graph of src/ has no cycle", async () => {
  const graph = await graphOfSrc();
  assert.ok(graph.size > 100, `read only ${graph.size} modules: is the parser still right?`);
  const found = cycles(graph).map((c) => c.map((f) => relative(SRC, f)).join(" → "));
  assert.deepEqual(found, [], `import cycles in src/:\n${found.join("\n")}`);
});

Deno.test("the cycle finder finds a cycle, type-only imports included", () => {
  const graph = new Map([
    ["a.ts", new Set(["b.ts"])],
    ["b.ts", new Set(["c.ts"])],
    ["c.ts", new Set(["a.ts"])],
    ["d.ts", new Set(["a.ts"])],
  ]);
  assert.deepEqual(cycles(graph), [["a.ts", "b.ts", "c.ts"]]);
  assert.deepEqual(imports('import type { X } from "./x.ts";\nexport { y } from "../y.ts";'), [
    "./x.ts",
    "../y.ts",
  ]);
});

Deno.test("no module of src/ only re-exports another", async () => {
  const shims: string[] = [];
  for (const file of await sources(SRC)) {
    const text = await Deno.readTextFile(file);
    // Statements left once comments, imports and `export … from` are taken out.
    const rest = text
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "")
      .replace(/^\s*(?:import|export)\s[^;]*?\sfrom\s+["'][^"']+["'];?/gms, "")
      .replace(/^\s*import\s+["'][^"']+["'];?/gm, "")
      .trim();
    if (rest === "" && /\bexport\b/.test(text)) shims.push(relative(SRC, file));
  }
  assert.deepEqual(shims, [], `modules that only re-export: ${shims.join(", ")}`);
});

const SHARED = [
  "errors.ts",
  "protocol.ts",
  "limits.ts",
  "log.ts",
  "runtime.ts",
  "duration.ts",
  "version.ts",
];
/** Top-level folders that may import `events.ts` (it imports types of `message/` and `peer/`). */
const EVENTS_USERS = ["host", "terminal", "apps", "cli"];

/** The folder table of docs/design.md: each folder of src/ and the top-level folders it may import. */
async function folderRules(): Promise<Map<string, Set<string> | "everything">> {
  const design = await Deno.readTextFile(new URL("../../docs/design.md", import.meta.url));
  const section = design.split("## Folders of src/ and what may import what")[1] ?? "";
  const rules = new Map<string, Set<string> | "everything">();
  for (const line of section.split("\n")) {
    const m = line.match(/^\|\s*`([a-z0-9_/]+)\/`\s*\|[^|]*\|([^|]*)\|/);
    if (!m) continue;
    const [, folder, may] = m as unknown as [string, string, string];
    const as = may.match(/as `([a-z0-9_/]+)\/`/);
    rules.set(
      folder,
      may.includes("everything")
        ? "everything"
        : as
        ? rules.get(as[1]!)!
        : new Set([...may.matchAll(/`([a-z_]+)`/g)].map((x) => x[1]!)),
    );
  }
  return rules;
}

Deno.test("docs/design.md names every folder of src/, and every import of src/ keeps its table", async () => {
  const rules = await folderRules();
  assert.ok(
    rules.size >= 10,
    `read ${rules.size} folders from docs/design.md: is the table there?`,
  );
  const folders = new Set(
    (await sources(SRC)).map((f) => dirname(relative(SRC, f))).filter((d) => d !== "."),
  );
  const unnamed = [...folders].filter((d) => !rules.has(d));
  assert.deepEqual(unnamed, [], `folders of src/ that docs/design.md does not name`);
  const broken: string[] = [];
  for (const [file, deps] of await graphOfSrc()) {
    const from = relative(SRC, file);
    const fromTop = from.includes("/") ? from.split("/")[0]! : "";
    for (const dep of deps) {
      const to = relative(SRC, dep);
      if (to.startsWith("..")) continue; // outside src/: npm or node modules never appear here
      const toTop = to.includes("/") ? to.split("/")[0]! : "";
      if (toTop === fromTop) continue;
      if (toTop === "" && SHARED.includes(to)) continue;
      if (to === "events.ts") {
        if (!EVENTS_USERS.includes(fromTop)) broken.push(`${from} → ${to}`);
        continue;
      }
      // The shared files and events.ts import no folder (events.ts: types of message/, peer/).
      if (fromTop === "") {
        if (!(from === "events.ts" && ["message", "peer"].includes(toTop))) {
          broken.push(`${from} → ${to}`);
        }
        continue;
      }
      const rule = rules.get(fromTop);
      if (rule === "everything") continue;
      if (!rule?.has(toTop)) broken.push(`${from} → ${to}`);
    }
  }
  assert.deepEqual(broken, [], `imports that docs/design.md's folder table does not allow`);
});
