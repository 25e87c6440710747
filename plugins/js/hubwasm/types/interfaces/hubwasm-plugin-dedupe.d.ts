declare module 'hubwasm:plugin/dedupe@0.2.0' {
  /**
   * Whether `key` is new in the consumer group (not recorded in the last `ttl-secs`).
   */
  export function firstSeen(key: string, ttlSecs: number): boolean;
}
