/** `gatehouse keygen --out PREFIX`: a new minisign key pair, PREFIX.pub and PREFIX.key. */
import { generateKeyPair } from '../verify/minisign-key.js';
import { writeKeyPair } from '../verify/key-files.js';
import { parseCommandLine, usageError } from './command-line.js';
import { describeError, reportFailure } from './failures.js';
import { writeStdoutLine } from './terminal.js';

const COMMAND = 'keygen';

const HELP = `Usage: gatehouse keygen --out PREFIX

Generates an Ed25519 key pair in minisign's format: PREFIX.pub (0644), the public key to put in a
trusted-keys directory, and PREFIX.key (0600, unencrypted), the secret key that signs manifests. Keep
PREFIX.key outside any repository or package: whoever has it can sign plugins every host will run.
Refuses to overwrite either file. Prints the public key's path and key id.

Options:
  --out PREFIX   where to write the pair, e.g. ~/.gatehouse/release (required)
  -h, --help     show this help

Exit status: 0 written, 1 failure (nothing is left half-written), 2 usage error.
`;

const OPTIONS = {
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function keygenCommand(argv: readonly string[]): Promise<number> {
  try {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS);
    if (values.help === true) {
      await writeStdoutLine(HELP.trimEnd());
      return 0;
    }
    if (values.out === undefined || values.out === '') throw usageError(COMMAND, '--out PREFIX is required');
    if (positionals.length > 0) throw usageError(COMMAND, `unexpected argument ${JSON.stringify(positionals[0])}`);
    const pair = generateKeyPair();
    const { publicKeyPath, secretKeyPath } = await writeKeyPair(values.out, pair);
    // The secret key's path only, never its contents: terminals and CI logs are kept and shared.
    await writeStdoutLine(`public key: ${publicKeyPath}\nkey id: ${pair.publicKey.keyId}\nsecret key: ${secretKeyPath} (keep it private)`);
    return 0;
  } catch (error) {
    return reportFailure(COMMAND, describeError(error));
  }
}
