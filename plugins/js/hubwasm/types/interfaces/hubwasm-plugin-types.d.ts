declare module 'hubwasm:plugin/types@0.2.0' {
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
   * The application properties: a range of entries of `event-batch.properties`.
   */
  export type SpanField = 'body' | 'offset' | 'partition-key' | 'content-type' | 'correlation-id' | 'message-id' | 'properties';
  /**
   * The kind of an application property's value in `event-batch.properties`.
   * # Variants
   * 
   * ## `"null"`
   * 
   * AMQP null; the value word is 0.
   * ## `"boolean"`
   * 
   * A boolean; the value word is 0 or 1.
   * ## `"integer"`
   * 
   * Any AMQP integer type, widened: the value word as a signed 64-bit integer.
   * ## `"double"`
   * 
   * A float or double: the value word as IEEE 754 binary64 bits.
   * ## `"text"`
   * 
   * UTF-8 text at a range of `data`: the value word's low 32 bits are the start, the
   * high 32 bits the length.
   * ## `"binary"`
   * 
   * Binary data at a range of `data`, as for `text`.
   * ## `"timestamp"`
   * 
   * A timestamp, milliseconds since the Unix epoch (UTC), as a signed 64-bit integer.
   * ## `"uuid"`
   * 
   * A UUID in canonical text form at a range of `data`, as for `text`.
   */
  export type PropertyKind = 'null' | 'boolean' | 'integer' | 'double' | 'text' | 'binary' | 'timestamp' | 'uuid';
  /**
   * A batch of consecutive events from one partition, laid out as columns of little-endian
   * numbers plus one byte buffer. Every column is a `list<u8>`, so the host copies a batch
   * into the plugin as five blocks of memory and every language's bindings receive five byte
   * strings: nothing is converted per event or per number until the plugin reads it. The
   * guest libraries (Python and JavaScript `hubwasm`) wrap it in per-event views;
   * `docs/plugins.md` describes the layout for a guest library in another language.
   */
  export interface EventBatch {
    /**
     * Sequence number of each event, in partition order: 8 bytes per event, a
     * little-endian signed 64-bit integer. Its length divided by 8 is the batch size.
     */
    sequenceNumbers: Uint8Array,
    /**
     * When Event Hubs accepted each event, milliseconds since the Unix epoch (UTC): 8 bytes
     * per event, little-endian signed 64-bit.
     */
    enqueuedTimesMs: Uint8Array,
    /**
     * Where each event's fields are: 56 bytes per event, 7 pairs (one per `span-field`, in
     * order) of little-endian unsigned 32-bit words, start then length. Read as 32-bit
     * words, for event `i` and field `f`, word `(i * 7 + f) * 2` is the start and word
     * `(i * 7 + f) * 2 + 1` the length. An absent optional field has start `0xffffffff` and
     * length 0. The `properties` field's range counts entries of `properties`.
     */
    spans: Uint8Array,
    /**
     * Bodies, offsets, keys, ids, property names and property texts of all events, back to
     * back.
     */
    data: Uint8Array,
    /**
     * Application properties of all events, 24 bytes per entry, little-endian: the name's
     * start and length in `data` (two unsigned 32-bit words), the `property-kind` (an
     * unsigned 32-bit word), 4 bytes of zero, then an 8-byte value word whose meaning the
     * kind gives. Each event's `properties` span selects its own entries.
     */
    properties: Uint8Array,
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
