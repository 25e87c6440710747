// noop in JavaScript: accepts every batch without looking at it (the cost of a call and its copy).
import { plugin } from "../hubwasm/index.js";

class Noop {
  handleBatch(ctx, batch) {}
}

export const { lifecycle, batchHandler } = plugin(Noop);
