"""One module per `holdtts` sub-command; each exposes a click command named `command`."""


def report_training(summary: dict) -> None:
    """Print a training summary (rank 0 only) and exit with its status: 130/143 after a signal, so the
    recipe's stage driver never marks an interrupted run done."""
    import json
    import os
    import sys

    import click

    from holdtts.training.loop import exit_status

    if int(os.environ.get("RANK", 0)) == 0:
        click.echo(json.dumps(summary, indent=2))
    status = exit_status(summary)
    if status:
        if status > 128:
            click.echo(f"stopped by a signal at step {summary.get('step', '?')} after saving a checkpoint; "
                       "run the same command again to resume", err=True)
        sys.exit(status)
