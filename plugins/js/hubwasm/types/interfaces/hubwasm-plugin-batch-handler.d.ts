/// <reference path="./hubwasm-plugin-types.d.ts" />
declare module 'hubwasm:plugin/batch-handler@0.2.0' {
  /**
   * Handle a batch of consecutive events of one partition. `ok` means every event was handled;
   * `err` says how far the batch got, and the host checkpoints up to the last success.
   */
  export function handleBatch(context: PartitionContext, batch: EventBatch): void;
  export type PartitionContext = import('hubwasm:plugin/types@0.2.0').PartitionContext;
  export type EventBatch = import('hubwasm:plugin/types@0.2.0').EventBatch;
  export type BatchError = import('hubwasm:plugin/types@0.2.0').BatchError;
}
