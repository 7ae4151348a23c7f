/**
 * Conn: all the client needs from a Redis connection. `fromNodeRedis` adapts a client of the
 * `redis` npm package (node-redis v5 or v6); any other library can offer the two methods.
 */

/** A reply: null, a number, a string (or Buffer), an array, or an Error in place of a failed
 * command inside a transaction. */
export type Reply = null | number | string | Buffer | Error | Reply[];

export interface Conn {
  /** Runs one command; rejects with an Error whose message is the server's error text
   * ("NOSCRIPT No matching script ..."). */
  send(args: readonly string[]): Promise<Reply>;
  /** Runs the commands in one MULTI/EXEC on one connection and resolves to EXEC's replies,
   * an Error in place of a command that failed inside the transaction. */
  transaction(commands: readonly (readonly string[])[]): Promise<Reply[]>;
}

/** The part of a node-redis client (`createClient()`) the adapter uses. */
export interface NodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
  multi(): NodeRedisMulti;
}

interface NodeRedisMulti {
  addCommand(args: string[]): unknown;
  exec(): Promise<unknown[]>;
}

/** Adapts a connected node-redis client (`await createClient({ url }).connect()`). */
export function fromNodeRedis(client: NodeRedisClient): Conn {
  return {
    async send(args) {
      return (await client.sendCommand([...args])) as Reply;
    },
    async transaction(commands) {
      const multi = client.multi();
      for (const command of commands) multi.addCommand([...command]);
      try {
        return (await multi.exec()) as Reply[];
      } catch (error) {
        // node-redis rejects the whole EXEC when one command failed (MultiErrorReply);
        // its replies hold an Error in the failed command's place
        const replies = (error as { replies?: unknown }).replies;
        if (Array.isArray(replies)) return replies as Reply[];
        throw error;
      }
    },
  };
}

export function replyInt(reply: Reply): number {
  if (typeof reply === "number") return reply;
  if (reply instanceof Error) throw reply;
  if (typeof reply === "string" || Buffer.isBuffer(reply)) {
    const value = Number(reply.toString());
    if (Number.isInteger(value)) return value;
  }
  throw new Error(`seen: expected an integer reply, got ${String(reply)}`);
}

/** A bulk or status reply as a string; null for a nil reply. */
export function replyString(reply: Reply): string | null {
  if (reply === null) return null;
  if (reply instanceof Error) throw reply;
  if (typeof reply === "string") return reply;
  if (Buffer.isBuffer(reply)) return reply.toString("utf8");
  if (typeof reply === "number") return String(reply);
  throw new Error("seen: expected a string reply, got an array");
}

export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}
