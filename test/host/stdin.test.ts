import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { isGatehouseError, launch } from '../../src/index.js';
import { KV_COOKIE } from '../../examples/kv/kv.js';

const hostScript = fileURLToPath(new URL('../fixtures/host-with-stdin.js', import.meta.url));

/** Runs the fixture host with `input` on its stdin and returns what its plugin read. */
function pluginRead(option: string, input: string): Promise<{ text: string; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const host = execFile(process.execPath, [hostScript, option], { timeout: 30_000 }, (error, stdout) =>
      error ? reject(error) : resolve(JSON.parse(stdout.trim()) as { text: string; ended: boolean }),
    );
    host.stdin?.end(input);
  });
}

test("stdin: by default the plugin reads nothing of the host's input", async (t) => {
  t.deepEqual(await pluginRead('ignore', 'meant for the host\n'), { text: '', ended: true });
});

test("stdin: 'inherit' hands the host's stdin to the plugin (go-plugin's TTY preservation)", async (t) => {
  t.deepEqual(await pluginRead('inherit', 'answer to a prompt\n'), { text: 'answer to a prompt\n', ended: true });
});

test('stdin: any other value is refused before anything runs', async (t) => {
  const error = await t.throwsAsync(
    launch({ command: process.execPath, cookie: KV_COOKIE, stdin: 'pipe' as unknown as 'inherit' }),
  );
  t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
});
