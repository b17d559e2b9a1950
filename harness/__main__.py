from harness.cli.entry import run

run()
