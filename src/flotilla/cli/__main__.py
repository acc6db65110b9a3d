from flotilla.cli.main import run

run()
