/**
 * Waiters for an id the peer is to answer (a broker announcement, a knock's acknowledgement), oldest
 * first. An id with no waiter left has no entry: the ids come from the peer (it hands them to the host to
 * dial), so an entry kept per id would let it grow our memory one id at a time.
 */
export class WaitersById<W> {
  private readonly byId = new Map<number, W[]>();

  /** Ids with at least one waiter. */
  get size(): number {
    return this.byId.size;
  }

  add(id: number, waiter: W): void {
    const waiters = this.byId.get(id);
    if (waiters === undefined) this.byId.set(id, [waiter]);
    else waiters.push(waiter);
  }

  /** The oldest waiter for `id`, no longer waiting. */
  take(id: number): W | undefined {
    const waiters = this.byId.get(id);
    const waiter = waiters?.shift();
    if (waiters?.length === 0) this.byId.delete(id);
    return waiter;
  }

  /** Forgets a waiter that gave up (its deadline). */
  remove(id: number, waiter: W): void {
    const waiters = this.byId.get(id);
    const index = waiters?.indexOf(waiter) ?? -1;
    if (index >= 0) waiters!.splice(index, 1);
    if (waiters?.length === 0) this.byId.delete(id);
  }

  /** Every waiter, no longer waiting. */
  takeAll(): W[] {
    const all = [...this.byId.values()].flat();
    this.byId.clear();
    return all;
  }
}
