"""Training: one rank's loop (`loop.train_rank`, `loop.fit`), global batches split across ranks
(`batching`), the event stream (`events`), checkpoints, optimizers, gradient-sync backends (`sync/`)."""
