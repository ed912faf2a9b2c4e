// The engines' per-key lock: one key's work runs one at a time and in order; a failure frees the key.
import test from 'ava';
import { KeyLock } from '../../examples/secrets-server/engines/engine.js';

test('key lock: work on one key never overlaps and runs in arrival order; a failure does not hold the key', async (t) => {
  const lock = new KeyLock();
  const events: string[] = [];
  const step = (name: string) => async () => {
    events.push(`${name} start`);
    await new Promise((resolve) => setImmediate(resolve));
    events.push(`${name} end`);
    return name;
  };
  const failing = lock.run('k', async () => {
    await step('fail')();
    throw new Error('refused');
  });
  const [second, other, third] = await Promise.all([lock.run('k', step('second')), lock.run('other', step('other')), lock.run('k', step('third'))]);
  await t.throwsAsync(failing, { message: 'refused' });
  t.deepEqual([second, other, third], ['second', 'other', 'third']);
  const onK = events.filter((event) => !event.startsWith('other'));
  t.deepEqual(onK, ['fail start', 'fail end', 'second start', 'second end', 'third start', 'third end']);
  // Another key is not held up by this one.
  t.true(events.indexOf('other start') < events.indexOf('fail end'));
});
