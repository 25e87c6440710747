/// <reference path="./interfaces/hubwasm-plugin-batch-handler.d.ts" />
/// <reference path="./interfaces/hubwasm-plugin-dedupe.d.ts" />
/// <reference path="./interfaces/hubwasm-plugin-emit.d.ts" />
/// <reference path="./interfaces/hubwasm-plugin-lifecycle.d.ts" />
/// <reference path="./interfaces/hubwasm-plugin-log.d.ts" />
/// <reference path="./interfaces/hubwasm-plugin-state.d.ts" />
/// <reference path="./interfaces/hubwasm-plugin-types.d.ts" />
declare module 'hubwasm:plugin/batch-plugin@0.2.0' {
  export type * as HubwasmPluginDedupe020 from 'hubwasm:plugin/dedupe@0.2.0'; // import hubwasm:plugin/dedupe@0.2.0
  export type * as HubwasmPluginEmit020 from 'hubwasm:plugin/emit@0.2.0'; // import hubwasm:plugin/emit@0.2.0
  export type * as HubwasmPluginLog020 from 'hubwasm:plugin/log@0.2.0'; // import hubwasm:plugin/log@0.2.0
  export type * as HubwasmPluginState020 from 'hubwasm:plugin/state@0.2.0'; // import hubwasm:plugin/state@0.2.0
  export type * as HubwasmPluginTypes020 from 'hubwasm:plugin/types@0.2.0'; // import hubwasm:plugin/types@0.2.0
  export * as lifecycle from 'hubwasm:plugin/lifecycle@0.2.0'; // export hubwasm:plugin/lifecycle@0.2.0
  export * as batchHandler from 'hubwasm:plugin/batch-handler@0.2.0'; // export hubwasm:plugin/batch-handler@0.2.0
}
