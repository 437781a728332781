"""Bytes that should be text: binary formats recognized before any parsing, text decoded by what it says it is."""

from __future__ import annotations

import codecs

# (signature, offset, what the file is): the formats people mistake for articles, and what programs are.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF-", 0, "a PDF document"),
    (b"PK\x03\x04", 0, "a ZIP archive (Word .docx, .odt and .epub files are ZIP archives too)"),
    (b"PK\x05\x06", 0, "an empty ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "an old Microsoft Office document (.doc, .xls or .ppt)"),
    (b"{\\rtf", 0, "an RTF document"),
    (b"%!PS", 0, "a PostScript document"),
    (b"\x1f\x8b", 0, "gzip-compressed data"),
    (b"BZh", 0, "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", 0, "xz-compressed data"),
    (b"(\xb5/\xfd", 0, "zstd-compressed data"),
    (b"7z\xbc\xaf'\x1c", 0, "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image"),
    (b"\xff\xd8\xff", 0, "a JPEG image"),
    (b"GIF87a", 0, "a GIF image"),
    (b"GIF89a", 0, "a GIF image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"WEBP", 8, "a WebP image"),
    (b"WAVE", 8, "a WAV audio file"),
    (b"ftyp", 4, "an MP4 or QuickTime video (or a HEIC image)"),
    (b"\x1aE\xdf\xa3", 0, "a Matroska or WebM video"),
    (b"OggS", 0, "an Ogg audio or video file"),
    (b"fLaC", 0, "a FLAC audio file"),
    (b"ID3", 0, "an MP3 audio file"),
    (b"\x7fELF", 0, "a Linux program (ELF)"),
    (b"MZ", 0, "a Windows program"),
    (b"\xcf\xfa\xed\xfe", 0, "a macOS program (Mach-O)"),
    (b"\xca\xfe\xba\xbe", 0, "a Java class file or macOS program"),
    (b"\x00asm", 0, "a WebAssembly module"),
    (b"SQLite format 3\x00", 0, "an SQLite database"),
)
# Signatures readable enough to begin a real text ("MZ Wallace said…", "The ftyp box…" has "ftyp" at 4): these
# name the file only when it also looks binary, as those formats always do.
_WEAK = frozenset({b"MZ", b"ID3", b"BZh", b"GIF87a", b"GIF89a", b"OggS", b"fLaC", b"WEBP", b"WAVE", b"ftyp"})

# Byte order marks, longest first: UTF-32 LE begins with UTF-16 LE's.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# C0 controls and DEL, without the ones text uses (tab, line feed, vertical tab, form feed, carriage return).
_CONTROLS = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_CONTROL_CHARS = dict.fromkeys(_CONTROLS)
_NUL_WINDOW = 8000
MAX_CONTROL_SHARE = 0.02  # text files have next to none; binary data about 12%
_STRAY_CONTROLS = 8  # a few are forgiven in a short text: clean_text drops them
_SAMPLE_BYTES = 4096


def binary_kind(data: bytes) -> str | None:
    """Name what ``data`` is when it is not text ("a PDF document", "a binary file"), or None when it may be text.

    By signature first, then by content: a NUL in the first 8,000 bytes (as git decides), or more than
    ``MAX_CONTROL_SHARE`` of control characters (and more than a few). Text with a UTF-16 or UTF-32 byte
    order mark, or UTF-16 without one, is judged on its characters, not its bytes: its NUL bytes are half
    of its letters.
    """
    looks_binary = _looks_binary(data)
    for signature, offset, kind in _SIGNATURES:
        if data.startswith(signature, offset) and (signature not in _WEAK or looks_binary):
            return kind
    return "a binary file" if looks_binary else None


def decode(data: bytes, charset: str | None = None) -> str:
    """Decode text: by its byte order mark, else as UTF-16 when it plainly is, else as ``charset`` says, else
    as UTF-8, else as charset-normalizer guesses, else as Windows-1252 with replacement characters."""
    bom = _bom(data)
    if bom:
        return data[len(bom[0]) :].decode(bom[1], errors="replace")
    for encoding in (_utf16_without_bom(data), charset, "utf-8"):
        if encoding:
            try:
                return data.decode(encoding)
            except (LookupError, UnicodeDecodeError):
                continue
    import charset_normalizer

    guess = charset_normalizer.from_bytes(data).best()
    return str(guess) if guess is not None else data.decode("cp1252", errors="replace")


def _bom(data: bytes) -> tuple[bytes, str] | None:
    return next(((marker, encoding) for marker, encoding in _BOMS if data.startswith(marker)), None)


def _looks_binary(data: bytes) -> bool:
    bom = _bom(data)
    wide = bom[1] if bom and bom[1] != "utf-8" else _utf16_without_bom(data)
    if wide:
        text = data[len(bom[0]) if bom else 0 :].decode(wide, errors="replace")
        controls = len(text) - len(text.translate(_CONTROL_CHARS))
        return "\x00" in text[: _NUL_WINDOW // 2] or controls > max(_STRAY_CONTROLS, MAX_CONTROL_SHARE * len(text))
    if b"\x00" in data[:_NUL_WINDOW]:
        return True
    controls = len(data) - len(data.translate(None, _CONTROLS))
    return controls > max(_STRAY_CONTROLS, MAX_CONTROL_SHARE * len(data))


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le`` or ``utf-16-be`` when ``data`` reads as mostly-Latin UTF-16 without a byte order mark.

    Such text has a NUL in every other byte: the high byte of each ASCII letter.
    """
    sample = data[:_SAMPLE_BYTES]
    if len(sample) < 4 or len(data) % 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd > 0.4 * half and even < 0.05 * half:
        encoding = "utf-16-le"
    elif even > 0.4 * half and odd < 0.05 * half:
        encoding = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else encoding
