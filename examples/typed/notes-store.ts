// What the three Notes plugins share: the notes and the List stream. Each plugin only adapts its
// generator's types, so the examples differ exactly where the generators do.
import type { MagicCookie } from '../../src/plugin/index.js';

export const NOTES_COOKIE: MagicCookie = { key: 'GATEHOUSE_NOTES_PLUGIN', value: '5c1e-notes' };

export interface StoredNote {
  id: string;
  text: string;
  stars: number;
}

/** A server-streaming call as every generator types it, reduced to what List uses. */
export interface NoteStream {
  write(note: StoredNote): unknown;
  end(): void;
  on(event: 'cancelled', listener: () => void): unknown;
}

/** How often an endless List repeats its notes, until the caller cancels. */
const ENDLESS_INTERVAL_MS = 20;

export class NotesStore {
  private readonly notes: StoredNote[] = [];

  add(text: string, stars: number): string {
    const id = `n${this.notes.length + 1}`;
    this.notes.push({ id, text, stars });
    return id;
  }

  /**
   * Streams the notes whose text starts with `prefix`: at most `limit` of them, or with limit 0 the
   * same notes again and again until the caller cancels (to show that a client's `break` cancels).
   */
  list(call: NoteStream, prefix: string, limit: number, onCancelled: () => void): void {
    const matching = this.notes.filter((note) => note.text.startsWith(prefix));
    if (limit > 0) {
      for (const note of matching.slice(0, limit)) call.write(note);
      call.end();
      return;
    }
    const timer = setInterval(() => matching.forEach((note) => call.write(note)), ENDLESS_INTERVAL_MS);
    call.on('cancelled', () => {
      clearInterval(timer);
      onCancelled();
    });
  }
}
