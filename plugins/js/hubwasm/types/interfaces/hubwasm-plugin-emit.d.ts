/// <reference path="./hubwasm-plugin-types.d.ts" />
declare module 'hubwasm:plugin/emit@0.2.0' {
  /**
   * Queue `event` for the output named `output`, emitted on behalf of the event of the
   * current call whose sequence number is `source`. An output name the operator did not
   * configure is a fault of the deployment, not of the event: the call stops and the
   * partition pauses (nothing is dead-lettered) until the configuration is fixed.
   */
  export function send(output: string, source: bigint, event: OutgoingEvent): void;
  export type Property = import('hubwasm:plugin/types@0.2.0').Property;
  /**
   * An event to send.
   */
  export interface OutgoingEvent {
    /**
     * The body, unchanged.
     */
    body: Uint8Array,
    /**
     * Events with one partition key land in one partition of the output, in order. Without
     * one, the output's partition is chosen by Event Hubs.
     */
    partitionKey?: string,
    /**
     * MIME content type, if any.
     */
    contentType?: string,
    /**
     * Application properties.
     */
    properties: Array<Property>,
  }
  /**
   * Why an event was not queued. Nothing was queued; the plugin decides what follows
   * (usually a `rejected` verdict).
   */
  export type EmitError = EmitErrorInvalidSource | EmitErrorTooLarge;
  /**
   * `source` is not the sequence number of an event of the current call.
   */
  export interface EmitErrorInvalidSource {
    tag: 'invalid-source',
    val: bigint,
  }
  /**
   * The event, or all the events emitted by the current call, exceed a limit; the text
   * names the limit.
   */
  export interface EmitErrorTooLarge {
    tag: 'too-large',
    val: string,
  }
}
