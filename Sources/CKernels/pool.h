// A pool of helper threads for the kernels: one call at a time splits its
// work into `parts`; the caller runs part 0 and the helpers the rest.
// Helpers spin briefly between calls (a generation step makes dozens of
// calls a millisecond apart, and waking a sleeping thread costs more than
// a product of one row), then sleep on a condition variable.
#ifndef HERD_POOL_H
#define HERD_POOL_H

typedef void (*herd_part_fn)(void *ctx, int part, int parts);

/// Runs fn(ctx, p, parts) for p < parts, on the caller and parts − 1
/// helpers; returns when all are done. A call made while another runs
/// (from another thread) runs its parts one after another on its caller.
void herd_parallel(herd_part_fn fn, void *ctx, int parts);

#endif
