"""Which encoding a partner file is read in, decided once and in this order:

1. A byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32) always decides: it is an explicit statement
   by the program that wrote the file, and no declared encoding overrides it.
2. A declared UTF-16 or UTF-32 (no BOM) is taken as declared: such bytes are never plausible
   UTF-8 text.
3. Bytes that are valid UTF-8 are UTF-8, whatever legacy encoding the drop box declares: a
   cp1252 drop box that receives a UTF-8 export must not turn `Renée` into `RenÃ©e`. (Text in a
   legacy encoding with any accented letter is almost never valid UTF-8 by accident.)
4. Otherwise the declared legacy encoding applies (`cp1252`, ...), or with `encoding: auto`
   charset-normalizer chooses among the configured candidates, looking only at the lines that
   hold non-ASCII bytes (the rest reads the same in every candidate), helped by the word shapes
   of `oddness`. When two candidates give different text that reads about equally well, it
   refuses and names its best guess rather than guess silently.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

AUTO = "auto"
UTF8_BOM = b"\xef\xbb\xbf"
# Longest first: a UTF-32 LE mark starts with the UTF-16 LE one.
BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (UTF8_BOM, "utf-8"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Candidates for `encoding: auto` when the config names none: Excel's "CSV" on Windows (Western
# Europe and the Americas) and on older Macs.
DEFAULT_CANDIDATES = ("cp1252", "mac-roman")
# At most this much of the file's non-ASCII lines is shown to the detector.
SAMPLE_BYTES = 256 * 1024
# Two candidates whose texts' ratings (mess ratio plus oddness, each 0 for text that reads
# cleanly) lie closer than this are too close to call.
UNSURE_MARGIN = 0.05
_READ = 1 << 20


class EncodingUnsure(Exception):  # noqa: N818 - what the partner is told
    """`auto` cannot tell the file's encoding; the message names the best guess and the fix."""


@dataclass(frozen=True)
class Decision:
    """How the file is read: the codec, the BOM bytes to skip, and what decided it.

    `by` is "bom", "declared", "utf-8" (the bytes are valid UTF-8) or "auto" (detected).
    """

    codec: str  # a Python codec name: "utf-8", "cp1252", "utf-16", ...
    bom: bool
    skip: int  # bytes of BOM the reader skips (0 when the codec consumes its own BOM)
    by: str


def codec_name(encoding: str) -> str:
    """Python's canonical name of `encoding` (LookupError if unknown)."""
    return codecs.lookup(encoding).name


def is_wide(codec: str) -> bool:
    """True for UTF-16 and UTF-32, whose text is full of NUL bytes."""
    return codec.startswith(("utf-16", "utf-32"))


def _bom(head: bytes) -> tuple[str, int] | None:
    for mark, codec in BOMS:
        if head.startswith(mark):
            # The utf-16 and utf-32 codecs read their own BOM to learn the byte order.
            return codec, len(mark) if codec == "utf-8" else 0
    return None


def scan_utf8(path: Path, sample_limit: int = SAMPLE_BYTES) -> tuple[bool, bytes]:
    """Whether the whole file is valid UTF-8, and its lines holding non-ASCII bytes (a sample).

    The sample is what tells legacy encodings apart; it is empty for an ASCII file.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    valid = True
    sample = bytearray()
    carry = b""
    with path.open("rb") as stream:
        while block := stream.read(_READ):
            if valid:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    valid = False
            if len(sample) < sample_limit:
                lines = (carry + block).split(b"\n")
                carry = lines.pop()
                for line in lines:
                    if not line.isascii() and len(sample) < sample_limit:
                        sample += line + b"\n"
            if not valid and len(sample) >= sample_limit:
                break
    if valid:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False  # ends in the middle of a character
    if carry and not carry.isascii() and len(sample) < sample_limit:
        sample += carry
    return valid, bytes(sample)


def oddness(text: str) -> float:
    """Share of the non-ASCII characters of `text` that sit oddly in their word (0 to 1).

    Odd: an upper-case letter inside a word (`JŸrgen`, `RenÈe`), a lower-case letter glued to a
    following capital (`ìSmartî`), a symbol stuck to a letter (`Gro§`), a control character.
    Lead files are short values (names, companies), where a wrong legacy encoding shows in
    exactly these shapes while a prose-trained mess detector sees too little text to object.
    """
    odd = total = 0
    for i, char in enumerate(text):
        if char.isascii():
            continue
        total += 1
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        kind = unicodedata.category(char)
        if kind in ("Cc", "Co", "Cn", "Cs"):
            odd += 1
        elif kind == "Lu":
            odd += before.islower() or (before.isalpha() and after.islower())
        elif kind == "Ll":
            odd += after.isupper()
        elif kind[0] in "SN" or (kind == "Po" and char not in _WORD_PUNCTUATION):
            odd += before.isalpha() or after.isalpha()
    return odd / total if total else 0.0


# Punctuation that may touch a word: ellipsis, middle dot, inverted marks.
_WORD_PUNCTUATION = "\u2026\u00b7\u00bf\u00a1"


def detect(sample: bytes, candidates: Sequence[str]) -> str:
    """The candidate `sample` reads best in (EncodingUnsure when none, or two, read well).

    charset-normalizer decodes the sample in every candidate and rates each text's mess; the
    word shapes of `oddness` are added to that rating. Candidates giving the same text are one
    answer; the first of them in `candidates` wins.
    """
    order = {codec_name(c): n for n, c in enumerate(candidates)}
    names = ", ".join(candidates)
    matches = list(from_bytes(sample, cp_isolation=list(order), threshold=0.2))
    if not matches:
        raise EncodingUnsure(
            f"the file is not UTF-8, and none of the encodings this drop box tries ({names}) "
            "reads it cleanly — save the file as UTF-8 ('CSV UTF-8' in Excel), or ask the "
            "operator to declare its encoding"
        )
    scored = sorted(
        ((m.chaos + oddness(str(m)), _rank(m.could_be_from_charset, order), m) for m in matches),
        key=lambda item: item[:2],
    )
    best_score, best_rank, best = scored[0]
    chosen = candidates[best_rank]
    rivals = [(score, rank) for score, rank, m in scored[1:] if str(m) != str(best)]
    if rivals and rivals[0][0] - best_score < UNSURE_MARGIN:
        raise EncodingUnsure(
            f"the file is not UTF-8, and its encoding is uncertain: it reads about as well "
            f"in {candidates[rivals[0][1]]} as in {chosen} (best guess: {chosen}) — save the "
            "file as UTF-8 ('CSV UTF-8' in Excel), or ask the operator to declare its encoding"
        )
    return chosen


def _rank(charsets: Sequence[str], order: dict[str, int]) -> int:
    """The position in the configured candidates of the first one giving this text."""
    return min(order[codec_name(c)] for c in charsets if codec_name(c) in order)


def decide(
    path: Path, head: bytes, declared: str, candidates: Sequence[str] = DEFAULT_CANDIDATES
) -> Decision:
    """How to read the file whose first bytes are `head` (see the module's rules).

    `declared` is the drop box's `encoding`: "utf-8", a codec name, or "auto". Raises
    LookupError for an unknown codec and EncodingUnsure when `auto` cannot tell.
    """
    found = _bom(head)
    if found is not None:
        codec, skip = found
        return Decision(codec, True, skip, "bom")
    if declared.lower() == AUTO:
        valid, sample = scan_utf8(path)
        if valid:
            return Decision("utf-8", False, 0, "utf-8")
        return Decision(detect(sample, candidates or DEFAULT_CANDIDATES), False, 0, "auto")
    codec = codec_name(declared)
    if codec == "utf-8":
        return Decision(codec, False, 0, "utf-8")
    if is_wide(codec):
        return Decision(codec, False, 0, "declared")
    valid, _ = scan_utf8(path, sample_limit=0)
    if valid:
        return Decision("utf-8", False, 0, "utf-8")
    return Decision(codec, False, 0, "declared")
