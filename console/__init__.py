"""The command-line application (`kcloud`) and the demo: where the stages are put together.

`console.main` is the root command and mounts every stage's command group; `console.gateway_cmd` serves
the gateway with the reports' endpoints; `console.demo` runs the whole pipeline for a minute;
`console.ops` is `kcloud status` and `kcloud alerts`; `console.cli_help` the examples of every command.

On top: may import the core (`kcloud`), every stage and `infra/` (local Kafka and PostgreSQL).
"""
