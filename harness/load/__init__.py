"""How many streams a machine can serve: Poisson arrivals of steps from N streams
(arrivals.py), batched across streams by a dynamic batcher with a stated policy (batcher.py),
served in real time by one backend's step (server.py), and the search for the largest N whose
p99 latency stays under a target (search.py). Pure of any framework: the step comes in as a
callable. May import harness/records (the trial records it fills); nothing above."""
