"""Device drivers behind the small protocols of drivers.base."""
