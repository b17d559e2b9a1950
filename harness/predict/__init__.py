"""A parallel-in-time solve predicted before it runs, and the verdict of one measured: the
iterations from the model's largest Lyapunov exponent by the sweep's law
(harness/sweeps/iteration_law.py), the machine's costs at the model's shape probed in seconds
(probe.py, costs.py), the prediction per method and T with its break-even T (model.py), and
the rule that turns a measured interval into wins / loses / too close to call (verdict.py).
May import harness.model, harness.machine, harness.sweeps and harness.records; reaches the
solver and the backends through harness.registry."""
