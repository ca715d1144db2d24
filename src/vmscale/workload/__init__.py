"""The workload vmscale scales (the fib backend) and the load client."""
