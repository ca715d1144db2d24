"""Load balancers: HAProxy driven over its runtime API, or none (clients balance over the event stream)."""
