// The server's errors: an HTTP status and a stable code (what clients branch on), and a message for people.

export class ServerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
