declare module 'hubwasm:plugin/state@0.2.0' {
  /**
   * The value of `key`, if set.
   */
  export function get(key: string): Uint8Array | undefined;
  /**
   * Set `key` to `value`.
   */
  export function set(key: string, value: Uint8Array): void;
  /**
   * Remove `key` (nothing happens if it is not set).
   */
  export { _delete as delete };
  function _delete(key: string): void;
  /**
   * Up to `limit` (at most 1000) entries whose key starts with `prefix`, in key order, each
   * after the key `after` if given (pass the last key returned to read the next page).
   */
  export function scanPrefix(prefix: string, after: string | undefined, limit: number): Array<[string, Uint8Array]>;
  /**
   * Why a write was refused. Nothing was written.
   */
  export type StateError = StateErrorKeyTooLarge | StateErrorValueTooLarge | StateErrorFull;
  /**
   * The key is longer than the limit (bytes).
   */
  export interface StateErrorKeyTooLarge {
    tag: 'key-too-large',
    val: number,
  }
  /**
   * The value is longer than the partition's `max_value_bytes`.
   */
  export interface StateErrorValueTooLarge {
    tag: 'value-too-large',
    val: number,
  }
  /**
   * The partition's state would exceed its `max_bytes`; the text says how far it is.
   */
  export interface StateErrorFull {
    tag: 'full',
    val: string,
  }
}
