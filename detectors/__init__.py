"""Pure detection code: arrays and parameters in, results out (no I/O, no threads)."""
