"""Tools around the runtime, apart from it: the demo, the benchmark, the simulated producer, the
detection check on simulated events, training data, tail, the local brokers and a worker subprocess."""
