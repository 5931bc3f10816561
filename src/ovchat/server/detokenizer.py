"""Each job's new text, from the ids it has generated so far."""

from __future__ import annotations

from typing import Protocol

from ovchat.server.jobs import Delta, Job


class Decoder(Protocol):
    def decode(self, ids: list[int]) -> str: ...


def post_new_text(job: Job, decoder: Decoder, new_tokens: int, final: bool) -> None:
    """Post the text the job's newest `new_tokens` ids add. Decoding all its ids, not just the new
    ones, keeps a character that spans tokens whole; a half character waits for the rest."""
    text = decoder.decode(job.ids)
    if text.endswith("\ufffd") and not final:
        text = job.text
    if text != job.text or new_tokens:
        job.post(Delta(text[len(job.text) :], new_tokens))
    job.text = text
