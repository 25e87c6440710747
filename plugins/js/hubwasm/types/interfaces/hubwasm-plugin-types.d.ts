declare module 'hubwasm:plugin/types@0.1.0' {
  /**
   * Where events come from. Given once per call, never copied per event.
   */
  export interface PartitionContext {
    /**
     * Fully qualified Event Hubs namespace, e.g. `myns.servicebus.windows.net`.
     */
    namespace: string,
    /**
     * Name of the event hub.
     */
    eventHub: string,
    /**
     * Consumer group the host reads with, e.g. `$Default`.
     */
    consumerGroup: string,
    /**
     * Partition id, e.g. `"0"`.
     */
    partitionId: string,
  }
  /**
   * A range: `len` items starting at index `start`.
   * 
   * In a batch, byte ranges point into `event-batch.data` and property ranges point into
   * `event-batch.properties`.
   */
  export interface Span {
    /**
     * Index of the first item.
     */
    start: number,
    /**
     * Number of items.
     */
    len: number,
  }
  /**
   * A typed application property value, as carried in AMQP application properties.
   */
  export type PropertyValue = PropertyValueNull | PropertyValueBoolean | PropertyValueInteger | PropertyValueDouble | PropertyValueText | PropertyValueBinary | PropertyValueTimestamp | PropertyValueUuid;
  /**
   * AMQP null.
   */
  export interface PropertyValueNull {
    tag: 'null',
  }
  /**
   * A boolean.
   */
  export interface PropertyValueBoolean {
    tag: 'boolean',
    val: boolean,
  }
  /**
   * Any AMQP integer type, widened.
   */
  export interface PropertyValueInteger {
    tag: 'integer',
    val: bigint,
  }
  /**
   * A float or double.
   */
  export interface PropertyValueDouble {
    tag: 'double',
    val: number,
  }
  /**
   * A string.
   */
  export interface PropertyValueText {
    tag: 'text',
    val: string,
  }
  /**
   * Binary data.
   */
  export interface PropertyValueBinary {
    tag: 'binary',
    val: Uint8Array,
  }
  /**
   * A timestamp, milliseconds since the Unix epoch (UTC).
   */
  export interface PropertyValueTimestamp {
    tag: 'timestamp',
    val: bigint,
  }
  /**
   * A UUID in its canonical hyphenated text form.
   */
  export interface PropertyValueUuid {
    tag: 'uuid',
    val: string,
  }
  /**
   * One application property of an event.
   */
  export interface Property {
    /**
     * Property name.
     */
    key: string,
    /**
     * Property value.
     */
    value: PropertyValue,
  }
  /**
   * One event as Event Hubs delivers it, self-contained. Used by the per-event world.
   */
  export interface Event {
    /**
     * The event body, unchanged.
     */
    body: Uint8Array,
    /**
     * Sequence number of the event in its partition; increases by one per event.
     */
    sequenceNumber: bigint,
    /**
     * Offset of the event in its partition, as Event Hubs reports it (a string).
     */
    offset: string,
    /**
     * When Event Hubs accepted the event, milliseconds since the Unix epoch (UTC).
     */
    enqueuedTimeMs: bigint,
    /**
     * The partition key the producer gave, if any.
     */
    partitionKey?: string,
    /**
     * MIME content type, if the producer set one.
     */
    contentType?: string,
    /**
     * Correlation id, if the producer set one.
     */
    correlationId?: string,
    /**
     * Message id, if the producer set one.
     */
    messageId?: string,
    /**
     * Application properties, in the order they were sent.
     */
    properties: Array<Property>,
  }
  /**
   * A property value inside a batch: variable-length values are byte ranges of
   * `event-batch.data`, so a whole batch is copied into the plugin without per-item allocation.
   */
  export type PropertySlot = PropertySlotNull | PropertySlotBoolean | PropertySlotInteger | PropertySlotDouble | PropertySlotText | PropertySlotBinary | PropertySlotTimestamp | PropertySlotUuid;
  /**
   * AMQP null.
   */
  export interface PropertySlotNull {
    tag: 'null',
  }
  /**
   * A boolean.
   */
  export interface PropertySlotBoolean {
    tag: 'boolean',
    val: boolean,
  }
  /**
   * Any AMQP integer type, widened.
   */
  export interface PropertySlotInteger {
    tag: 'integer',
    val: bigint,
  }
  /**
   * A float or double.
   */
  export interface PropertySlotDouble {
    tag: 'double',
    val: number,
  }
  /**
   * UTF-8 text at this range of `data`.
   */
  export interface PropertySlotText {
    tag: 'text',
    val: Span,
  }
  /**
   * Binary data at this range of `data`.
   */
  export interface PropertySlotBinary {
    tag: 'binary',
    val: Span,
  }
  /**
   * A timestamp, milliseconds since the Unix epoch (UTC).
   */
  export interface PropertySlotTimestamp {
    tag: 'timestamp',
    val: bigint,
  }
  /**
   * A UUID in canonical text form at this range of `data`.
   */
  export interface PropertySlotUuid {
    tag: 'uuid',
    val: Span,
  }
  /**
   * One application property inside a batch.
   */
  export interface PropertyEntry {
    /**
     * Property name: UTF-8 at this range of `data`.
     */
    key: Span,
    /**
     * Property value.
     */
    value: PropertySlot,
  }
  /**
   * The fields of an event that `event-batch.spans` locates, in this order (7 per event).
   * # Variants
   * 
   * ## `"body"`
   * 
   * The body: a range of `data`.
   * ## `"offset"`
   * 
   * The offset string: a range of `data`.
   * ## `"partition-key"`
   * 
   * The partition key: a range of `data`; absent if the producer gave none.
   * ## `"content-type"`
   * 
   * The content type: a range of `data`; absent if not set.
   * ## `"correlation-id"`
   * 
   * The correlation id: a range of `data`; absent if not set.
   * ## `"message-id"`
   * 
   * The message id: a range of `data`; absent if not set.
   * ## `"properties"`
   * 
   * The application properties: a range of `event-batch.properties`.
   */
  export type SpanField = 'body' | 'offset' | 'partition-key' | 'content-type' | 'correlation-id' | 'message-id' | 'properties';
  /**
   * A batch of consecutive events from one partition, laid out in columns of numbers plus one
   * byte buffer, so the host copies it into the plugin as a few blocks of memory: no
   * allocation or conversion per event. The guest crate `hubwasm-guest` wraps it in per-event
   * views.
   */
  export interface EventBatch {
    /**
     * Sequence number of each event, in partition order. Its length is the batch size.
     */
    sequenceNumbers: BigInt64Array,
    /**
     * When Event Hubs accepted each event, milliseconds since the Unix epoch (UTC).
     */
    enqueuedTimesMs: BigInt64Array,
    /**
     * Where each event's fields are. For event `i` and field `f` (its position in
     * `span-field`, 0 to 6), `spans[(i * 7 + f) * 2]` is the start and
     * `spans[(i * 7 + f) * 2 + 1]` the length. An absent optional field has start
     * `0xffffffff` and length 0.
     */
    spans: Uint32Array,
    /**
     * Bodies, offsets, keys, ids and property texts of all events, back to back.
     */
    data: Uint8Array,
    /**
     * Application properties of all events; each event's `properties` span selects its own.
     */
    properties: Array<PropertyEntry>,
  }
  /**
   * A transient failure: the event may succeed later.
   */
  export interface RetryableError {
    /**
     * What went wrong, for logs and the dead-letter record.
     */
    message: string,
    /**
     * Do not retry sooner than this many milliseconds, if set.
     */
    retryAfterMs?: number,
  }
  /**
   * Why the plugin could not handle an event.
   */
  export type EventError = EventErrorRetryable | EventErrorRejected;
  /**
   * A transient problem (a downstream service is down, a rate limit). The host retries the
   * event with backoff, then follows the plugin's failure policy.
   */
  export interface EventErrorRetryable {
    tag: 'retryable',
    val: RetryableError,
  }
  /**
   * The event itself is bad (poison): retrying will not help. The host dead-letters it or
   * halts the partition, as configured. The string says why.
   */
  export interface EventErrorRejected {
    tag: 'rejected',
    val: string,
  }
  /**
   * How far a batch got when it did not fully succeed.
   */
  export interface BatchError {
    /**
     * Events before this index were handled; the event at this index failed with `error`;
     * events after it were not handled and will be delivered again.
     */
    failedAt: number,
    /**
     * Why the event at `failed-at` failed.
     */
    error: EventError,
  }
  /**
   * Why the host stops calling the plugin for a partition.
   * # Variants
   * 
   * ## `"ownership-lost"`
   * 
   * Another host instance took the partition over (load balancing or a lost claim).
   * ## `"shutdown"`
   * 
   * The host is shutting down.
   */
  export type CloseReason = 'ownership-lost' | 'shutdown';
}
