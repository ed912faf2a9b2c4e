// Secrets in the audit log are HMAC'd with a per-server key, as Vault's audit devices do: the log shows
// that two requests carried the same value (and an operator holding the key can check a guess), but a
// reader of the log never sees the value.
import { createHmac } from 'node:crypto';

export class AuditHasher {
  constructor(private readonly key: Buffer) {}

  hash(value: string | Buffer): string {
    return `hmac-sha256:${createHmac('sha256', this.key).update(value).digest('hex')}`;
  }
}
