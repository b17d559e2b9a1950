"""One recurrent step per call, the state kept by the caller: what a streaming service (speech,
keyword spotting, sensor streams) runs for each new input. One module per framework builds a
StepRunner (base.py) from a prepared model; each is proven equal to the whole sequence run at
once before anything times it (harness/bench/stream_workload.py)."""
