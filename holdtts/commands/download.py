"""`holdtts download`: LJSpeech 1.1, resumable and checked against its published checksum."""
from __future__ import annotations

import click

from holdtts.data.download import LJSPEECH_SHA256, LJSPEECH_URL


@click.command(name="download")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Where the archive is downloaded and LJSpeech-1.1/ extracted.")
@click.option("--url", default=LJSPEECH_URL, show_default=True, help="Where to download the archive from "
              "(a mirror, or a file:// URL of a local copy).")
@click.option("--sha256", default=LJSPEECH_SHA256, show_default=True,
              help="Expected sha256 of the archive.")
@click.option("--keep-archive/--no-keep-archive", default=True, show_default=True,
              help="Keep the .tar.bz2 after extracting it.")
def command(out_dir, url, sha256, keep_archive):
    """Download LJSpeech 1.1 (2.6 GB, 13,100 clips) and extract it; print the corpus directory.

    An interrupted download resumes from its .part file (HTTP Range). The archive keeps its final name
    only once its sha256 matches, and is extracted into a temporary directory renamed into place, so
    nothing incomplete ever looks done. A corpus already extracted in OUT_DIR is reused as it is.
    To use a copy you already have, skip this stage and run `holdtts prepare --corpus-dir DIR`.
    """
    from holdtts.data.download import download_ljspeech

    corpus = download_ljspeech(out_dir, url, sha256, keep_archive=keep_archive, progress=True)
    click.echo(str(corpus))
