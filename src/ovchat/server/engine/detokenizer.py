"""Each job's new text, from the ids it has generated so far (and their logprobs, if asked for)."""

from __future__ import annotations

from ovchat.prompt.tokens import PART, TokenLogprob
from ovchat.server.engine.jobs import Delta, Job
from ovchat.server.engine.token_bytes import Decoder, TokenBytes


def post_new_text(
    job: Job, decoder: Decoder, new: list[int], final: bool, token_bytes: TokenBytes | None = None
) -> None:
    """Post the text the job's `new` ids add. Decoding all its ids, not just the new ones, keeps a
    character that spans tokens whole; a half character waits for the rest. With `token_bytes`,
    the Delta carries each new token's logprob (read into job.logprobs)."""
    text = decoder.decode(job.ids)
    if text.endswith(PART) and not final:
        text = job.text
    logprobs = token_logprobs(job, decoder, new, token_bytes) if token_bytes is not None else ()
    if text != job.text or new:
        job.post(Delta(text[len(job.text) :], len(new), logprobs))
    job.text = text


def token_logprobs(
    job: Job, decoder: Decoder, new: list[int], token_bytes: TokenBytes
) -> tuple[TokenLogprob, ...]:
    """The new tokens with the logprobs GenAI reported for them (none it did not report: never made up)."""
    values, job.logprobs = job.logprobs[: len(new)], job.logprobs[len(new) :]
    offset = len(job.text)
    out = []
    for piece, value in zip(token_bytes.pieces(decoder, new), values, strict=False):
        if piece.text is not None:
            token = piece.text
        elif piece.raw is not None:
            token = "bytes:" + "".join(f"\\x{b:02x}" for b in piece.raw)  # OpenAI's form
        else:
            token = PART
        out.append(TokenLogprob(token, float(value), piece.bytes, offset))
        offset += len(piece.text or "")
    return tuple(out)
