declare module 'hubwasm:plugin/log@0.2.0' {
  /**
   * Write one log record with optional key/value fields.
   */
  export function log(level: Level, message: string, fields: Array<[string, string]>): void;
  /**
   * Severity of a log record.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * Very detailed tracing.
   * ## `"debug"`
   * 
   * Debugging details.
   * ## `"info"`
   * 
   * Normal operation.
   * ## `"warn"`
   * 
   * Something unexpected that the plugin handled.
   * ## `"error"`
   * 
   * Something failed.
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}
