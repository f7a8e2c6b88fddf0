"""`holdtts download`: a corpus archive (LJSpeech 1.1, VCTK 0.92, LibriTTS subsets), resumable and checked
against its published checksum, then extracted."""
from __future__ import annotations

import click

from holdtts.data.download import LJSPEECH_SHA256, LJSPEECH_URL


@click.command(name="download")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Where the archive is downloaded and the corpus extracted.")
@click.option("--corpus", type=click.Choice(["ljspeech", "vctk", "libritts"]), default="ljspeech",
              show_default=True, help="Which corpus.")
@click.option("--subsets", default="train-clean-100", show_default=True,
              help="LibriTTS only: comma-separated subsets (train-clean-100, train-clean-360, train-other-500, "
                   "dev-clean, dev-other, test-clean, test-other).")
@click.option("--url", default=None, help="Where to download the archive from (a mirror, or a file:// URL of a "
              f"local copy) [default: the corpus's own; ljspeech: {LJSPEECH_URL}]. For LibriTTS it holds "
              "'{subset}'.")
@click.option("--sha256", default=None,
              help=f"Expected sha256 of the archive [default: the corpus's published one; ljspeech: "
                   f"{LJSPEECH_SHA256}]. LibriTTS: one subset only.")
@click.option("--md5", default=None,
              help="Expected md5 of the archive instead of a sha256 (where a corpus publishes only md5 sums). "
                   "LibriTTS: one subset only.")
@click.option("--keep-archive/--no-keep-archive", default=True, show_default=True,
              help="Keep the archive after extracting it.")
def command(out_dir, corpus, subsets, url, sha256, md5, keep_archive):
    """Download a corpus and extract it; print the corpus directory.

    \b
      ljspeech  LJSpeech 1.1 (2.6 GB, 13,100 clips)          -> OUT_DIR/LJSpeech-1.1
      vctk      VCTK 0.92 (11 GB zip, 110 speakers, 48 kHz)   -> OUT_DIR/VCTK-Corpus-0.92
      libritts  LibriTTS subsets (24 kHz; train-clean-100:
                7.7 GB, 247 speakers)                         -> OUT_DIR/LibriTTS/<subset>

    An interrupted download resumes from its .part file (HTTP Range). The archive keeps its final name
    only once its checksum matches, and is extracted into a temporary directory renamed into place, so
    nothing incomplete ever looks done. A corpus already extracted in OUT_DIR is reused as it is.
    To use a copy you already have, skip this stage (LJSpeech: `holdtts prepare --corpus-dir DIR`;
    VCTK and LibriTTS: `holdtts import-corpus --source DIR`).
    """
    from holdtts.errors import HoldttsError

    if sha256 is not None and md5 is not None:
        raise HoldttsError("pass --sha256 or --md5, not both")
    if corpus == "ljspeech":
        from holdtts.data.download import download_ljspeech

        path = download_ljspeech(out_dir, url or LJSPEECH_URL, sha256 or LJSPEECH_SHA256, md5=md5,
                                 keep_archive=keep_archive, progress=True)
    elif corpus == "vctk":
        from holdtts.data.corpora import VCTK_URL, download_vctk

        path = download_vctk(out_dir, url or VCTK_URL, sha256, md5, keep_archive=keep_archive, progress=True)
    else:
        from holdtts.data.corpora import LIBRITTS_URL, download_libritts, parse_subsets

        names = parse_subsets(subsets)
        if (sha256 or md5) and len(names) != 1:
            raise HoldttsError("--sha256/--md5 name one archive: give one subset with them")
        given_sha = {names[0]: sha256} if sha256 else None
        given_md5 = {names[0]: md5} if md5 else None
        path = download_libritts(out_dir, names, url or LIBRITTS_URL, given_sha, given_md5,
                                 keep_archive=keep_archive, progress=True)
    click.echo(str(path))
