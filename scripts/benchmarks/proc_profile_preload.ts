/**
 * Loaded before `main.ts` (`deno run --preload`) into the `mailpeer host` processes of
 * `scripts/bench-host --profile-procs`: the V8 sampling profiler of the process, started by the
 * first SIGUSR2 and stopped by the second, which writes `<pid>.cpuprofile` into the folder
 * named by `MAILPEER_BENCH_PROFILE_DIR` (written to a temporary name, then renamed, so a reader
 * never sees half a file). The bench sends the signals when a mode's drain starts and ends, so
 * the profiles hold the drain and nothing else (docs/performance.md "What each bench measures").
 *
 * @module
 */
import { Session } from "node:inspector";

const dir = Deno.env.get("MAILPEER_BENCH_PROFILE_DIR");
if (dir) {
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve, reject) =>
      session.post(method, params, (err, res) => err ? reject(err) : resolve(res as T))
    );
  let running = false;
  Deno.addSignalListener("SIGUSR2", async () => {
    if (!running) {
      running = true;
      await post("Profiler.enable");
      await post("Profiler.setSamplingInterval", { interval: 200 });
      await post("Profiler.start");
      return;
    }
    running = false;
    const { profile } = await post<{ profile: unknown }>("Profiler.stop");
    const path = `${dir}/${Deno.pid}.cpuprofile`;
    await Deno.writeTextFile(`${path}.part`, JSON.stringify(profile));
    await Deno.rename(`${path}.part`, path);
  });
}
