"""s3sim: a local simulator of S3 event notifications -> AWS Lambda (versions and aliases).

The package map (tests/test_architecture.py enforces who may import whom):

    core/      pure values and rules, standard library only: ARNs, the config model and its
               parser, S3 event vocabulary and builder, routing, aliases, retry decisions,
               settle timers, the rescan diff, keys, Lambda's environment and error names,
               destination records, CodeDeploy's deployment types, lifecycle and rollback
               conditions
    store/     what persists, on disk: the workspace and its lock, the SQLite journal,
               published versions, config.yaml (reading, bounded YAML loading, one-line edits),
               the alias history, status.json
    s3/        the S3 side: the watcher, the intake thread (file events -> settled object
               changes -> journal), objects on disk, staging, CLI requests (replay, refire)
    lambdas/   the Lambda side: the scheduler and invocation threads, outcome recording,
               the environment pool, execution environments, process cleanup, and worker.py
               (which runs inside each environment and imports nothing of the simulator)
    promotion/ deployments over both: promote / rollback / shift commands, the shifter
               (weights on schedule, hooks, automatic rollback), the local CodeDeploy
               endpoint, the shift chart; it may import lambdas, nothing imports it but
               the wiring
    runtime    the composition root: starts, supervises and stops every part; cli_requests:
               the requests the CLI leaves in the journal (replay, refire, sync, idle)
    commands   what each CLI command does; cli: argv -> exit code
    logs       the structlog pipeline (JSON-lines file and console); errors: the exception
               tree; testing: `s3sim run` as a child process, for tests and scripts

The S3 side and the Lambda side never import each other; only runtime, commands and cli
wire them together.
"""

__version__ = "0.1.0"
