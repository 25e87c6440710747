/// <reference path="./hubwasm-plugin-types.d.ts" />
declare module 'hubwasm:plugin/lifecycle@0.2.0' {
  /**
   * Called once on each new instance, before any other call, with the plugin's configuration
   * from the host config. An `err` refuses to start; the string says what is wrong.
   */
  export function init(config: Array<[string, string]>): void;
  /**
   * The host starts delivering events of this partition (the host claimed it).
   */
  export function partitionOpened(context: PartitionContext): void;
  /**
   * The host stops delivering events of this partition, for `reason`.
   */
  export function partitionClosed(context: PartitionContext, reason: CloseReason): void;
  /**
   * The host hit an error outside the plugin for this partition (receiving, checkpointing).
   * Informational: the host handles recovery itself.
   */
  export function partitionError(context: PartitionContext, message: string): void;
  export type PartitionContext = import('hubwasm:plugin/types@0.2.0').PartitionContext;
  export type CloseReason = import('hubwasm:plugin/types@0.2.0').CloseReason;
}
